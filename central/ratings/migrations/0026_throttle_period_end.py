"""Each rate-limit count keeps its own period's end, so ``throttle.forget_old`` drops a count only
once its period is over (it dropped every count a day old, so no limit could span more than a day)."""

from datetime import timedelta

from django.db import migrations, models
from django.db.models import F


def ended_a_day_after_start(apps, schema_editor):
    """Counts kept before: their periods were at most a day long."""
    apps.get_model("ratings", "Throttle").objects.update(period_end=F("period_start") + timedelta(days=1))


class Migration(migrations.Migration):

    dependencies = [
        ("ratings", "0025_labels_in_chinese"),
    ]

    operations = [
        migrations.AddField(model_name="throttle", name="period_end", field=models.DateTimeField(null=True)),
        migrations.RunPython(ended_a_day_after_start, migrations.RunPython.noop),
        migrations.AlterField(model_name="throttle", name="period_end", field=models.DateTimeField()),
        migrations.RemoveIndex(model_name="throttle", name="throttle_age"),
        migrations.AddIndex(model_name="throttle", index=models.Index(fields=["period_end"], name="throttle_end")),
    ]
