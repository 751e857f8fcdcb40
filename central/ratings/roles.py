"""Who may see and do what: three roles as Django groups, and a department scope.

- 大厅管理员 (hall administrator): edits everything the terminals show, the rules and the
  early-warning rules; handles every work order and decides re-checks (复核).
- 部门负责人 (department manager): sees only their own department's windows, staff, ratings and
  work orders (``Operator.department``), and works its work orders; edits no content.
- 审计员 (auditor): reads everything, changes nothing.

Groups and their permissions are (re)made after every ``migrate``, so an upgrade brings new
permissions with it. Superusers see everything.
"""

from __future__ import annotations

from django.contrib.auth.models import Group, Permission

HALL_ADMIN, DEPARTMENT_MANAGER, AUDITOR = "大厅管理员", "部门负责人", "审计员"

CONTENT = ["hall", "department", "window", "staff", "notice", "serviceguide", "reasontag", "terminalsettings",
           "policy", "alertrule", "upwardplatform"]
RECORDS = ["rating", "terminalevent", "rejecteditem", "terminal", "enrollmentcode", "alert", "workorder",
           "workordernote", "operator", "chain", "commentforreview", "commentreviewentry", "case", "businesssystem",
           "ratingaddition", "smsmessage", "callbacktask", "upwarditem", "upwardday"]


def _perms(actions: list[str], models: list[str]) -> list[str]:
    return [f"{action}_{model}" for model in models for action in actions]


GRANTS = {
    HALL_ADMIN: (_perms(["view", "add", "change", "delete"], CONTENT)
                 + _perms(["view"], RECORDS) + ["change_terminal", "change_workorder", "decide_recheck",
                                                 "add_workordernote", "change_alert", "change_chain",
                                                 "change_commentforreview", "change_businesssystem",
                                                 "change_ratingaddition", "change_smsmessage",
                                                 "change_callbacktask", "publish_rectification",
                                                 "change_upwarditem"]),
    DEPARTMENT_MANAGER: (_perms(["view"], ["department", "window", "staff", "rating", "terminalevent", "workorder",
                                           "workordernote", "alert", "terminal", "case", "callbacktask"])
                         + ["change_workorder", "add_workordernote", "change_callbacktask"]),
    AUDITOR: _perms(["view"], CONTENT + RECORDS),
}


def ensure_roles(**kwargs) -> None:
    """Create or refresh the three groups (a post_migrate hook; safe to run again)."""
    for name, codenames in GRANTS.items():
        group, _ = Group.objects.get_or_create(name=name)
        perms = Permission.objects.filter(content_type__app_label="ratings", codename__in=codenames)
        missing = set(codenames) - set(perms.values_list("codename", flat=True))
        if missing:
            raise RuntimeError(f"role {name}: unknown permissions {sorted(missing)}")
        group.permissions.set(perms)


def department_of(user):
    """The one department a user is limited to, or None for the whole hall.

    A department manager without a department sees nothing: ``NOTHING`` stands for that."""
    if user.is_superuser or not user.groups.filter(name=DEPARTMENT_MANAGER).exists():
        return None
    operator = getattr(user, "operator", None)
    return operator.department if operator and operator.department_id else NOTHING


class _Nothing:
    pk = None

    def __repr__(self):
        return "NOTHING"


NOTHING = _Nothing()


def scope(queryset, user, field: str):
    """``queryset`` limited to the user's department through ``field`` (a lookup ending at Department)."""
    department = department_of(user)
    if department is None:
        return queryset
    if department is NOTHING:
        return queryset.none()
    return queryset.filter(**{field: department})


def window_codes(user) -> list[str] | None:
    """The user's department's windows now, for records that name only a window (alerts); None for
    all. Ratings and terminal events go by the department of their day (``department_ids``)."""
    from .models import Window
    department = department_of(user)
    if department is None:
        return None
    if department is NOTHING:
        return []
    return list(Window.objects.filter(department=department).values_list("code", flat=True))


def ratings_of(departments: list[int]):
    """A filter for the ratings (or terminal events) that count for ``departments``: those stored
    with one of them, and those stored while their window had none (or before events kept one), at a
    window in one of them now."""
    from django.db.models import Q

    from .models import Window
    return Q(department__in=departments) | Q(department__isnull=True, window_code__in=Window.objects.filter(
        department__in=departments).values("code"))


def scope_ratings(queryset, user):
    """``queryset`` (ratings or terminal events) limited to those of the user's department (``ratings_of``)."""
    departments = department_ids(user)
    return queryset if departments is None else queryset.filter(ratings_of(departments))


def department_ids(user) -> list[int] | None:
    """Departments whose ratings the user may see (each rating counts for its own, ``Rating.department``);
    None for all."""
    department = department_of(user)
    if department is None:
        return None
    return [] if department is NOTHING else [department.pk]


def scope_alerts(queryset, user):
    """Alerts a user may see: a department manager only those about their department's windows
    and the terminals at them (hall-wide alerts are the hall administrator's)."""
    from .models import Terminal
    windows = window_codes(user)
    if windows is None:
        return queryset
    terminals = Terminal.objects.filter(window__code__in=windows).values_list("terminal_id", flat=True)
    return queryset.filter(subject__in=[*windows, *terminals])


def colleagues(user):
    """The users a work order may be assigned to by ``user``: for a department manager, the people
    of their own department (their usernames are all they see); for everyone else, every staff user."""
    from django.contrib.auth.models import User
    department = department_of(user)
    staff = User.objects.filter(is_active=True, is_staff=True)
    if department is None:
        return staff
    if department is NOTHING:
        return staff.none()
    return staff.filter(operator__department=department)
