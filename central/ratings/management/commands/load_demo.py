"""Load a content folder (the shipped demo by default) into the roster: hall, windows, staff."""

from pathlib import Path

from django.core.files import File
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from central.ratings.models import (Department, Hall, Notice, ReasonTag, ServiceGuide, Staff,
                                   TerminalSettings, Window)
from terminal.content import DEMO_CONTENT, Content, ContentError


class Command(BaseCommand):
    help = "Load demo content (a hall, windows, staff with photos). Safe to run again."

    def add_arguments(self, parser):
        parser.add_argument("--folder", type=Path, default=DEMO_CONTENT,
                            help="content folder with content.json (default: the shipped demo)")

    @transaction.atomic
    def handle(self, *args, folder: Path, **options):
        try:
            content = Content.load(folder)
        except ContentError as exc:
            raise CommandError(str(exc)) from None
        hall, _ = Hall.objects.update_or_create(code=content.hall["code"], defaults={"name": content.hall["name"]})
        for code, name in content.departments.items():
            Department.objects.update_or_create(code=code, defaults={"name": name})
        for code, w in content.windows.items():
            Window.objects.update_or_create(code=code, defaults={
                "hall": hall, "name": w["name"],
                "department": Department.objects.filter(code=w.get("department")).first()})
        for member in content.staff.values():
            staff, _ = Staff.objects.update_or_create(staff_no=member.staff_no, defaults={
                "name": member.name, "unit": member.unit, "title": member.title,
                "badge_id": member.badge_id, "window": Window.objects.filter(code=member.window).first()})
            photo = content.photo_path(member)
            if not staff.photo and photo.is_file():
                with photo.open("rb") as f:
                    staff.photo.save(f"{member.staff_no}{photo.suffix}", File(f), save=True)
        for order, notice in enumerate(content.notices):
            Notice.objects.update_or_create(hall=hall, title=notice["title"],
                                            defaults={"body": notice["body"], "order": order})
        for guide in content.guides:
            ServiceGuide.objects.update_or_create(item_code=guide["item_code"], defaults={
                "title": guide["title"], "body": guide["body"],
                "department": Department.objects.filter(code=guide["item_code"][:18]).first()})
        for order, tag in enumerate(content.reason_tags):
            ReasonTag.objects.update_or_create(code=tag["code"], defaults={"label": tag["label"], "label_en": tag.get("label_en", ""), "order": order})
        if content.settings:
            TerminalSettings.objects.update_or_create(hall=hall, window=None, defaults=content.settings)
        self.stdout.write(f"loaded {content.hall['name']}: {len(content.windows)} windows, "
                          f"{len(content.staff)} staff (content {content.version})")
