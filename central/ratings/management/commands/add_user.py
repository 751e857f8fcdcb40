"""Create a user with one of the three roles (``rating-central add_user NAME --role auditor``)."""

import secrets

from django.contrib.auth import password_validation
from django.contrib.auth.models import Group, User
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError
from django.db import transaction

from central.ratings import roles
from central.ratings.models import Department, Operator

ROLES = {"hall_admin": roles.HALL_ADMIN, "department_manager": roles.DEPARTMENT_MANAGER, "auditor": roles.AUDITOR}


class Command(BaseCommand):
    stealth_options = ("stdin",)  # call_command(..., stdin=...) in tests
    help = ("Create a staff user with a role: hall_admin (大厅管理员), department_manager (部门负责人, needs "
            "--department) or auditor (审计员). Prints a generated password once, unless --password-stdin.")

    def add_arguments(self, parser):
        parser.add_argument("username")
        parser.add_argument("--role", required=True, choices=sorted(ROLES))
        parser.add_argument("--department", help="unified code of the department a manager answers for")
        parser.add_argument("--password-stdin", action="store_true", help="read the password from standard input")

    @transaction.atomic
    def handle(self, *args, username, role, department, password_stdin, **options):
        if User.objects.filter(username=username).exists():
            raise CommandError(f"user {username!r} already exists")
        found = None
        if role == "department_manager":
            if not department:
                raise CommandError("a department manager needs --department CODE")
            found = Department.objects.filter(code=department).first()
            if found is None:
                raise CommandError(f"no department {department!r}")
        password = self.read_password(options.get("stdin")) if password_stdin else secrets.token_urlsafe(12)
        try:  # the same rules as the admin's password forms (settings.AUTH_PASSWORD_VALIDATORS)
            password_validation.validate_password(password, User(username=username))
        except ValidationError as exc:
            raise CommandError("password refused: " + " ".join(exc.messages)) from None
        user = User.objects.create_user(username, password=password, is_staff=True)
        user.groups.add(Group.objects.get(name=ROLES[role]))
        Operator.objects.create(user=user, department=found)
        if not password_stdin:
            self.stdout.write(password)
        self.stderr.write(f"created {username} as {ROLES[role]}" + (f" of {found}" if found else ""))

    @staticmethod
    def read_password(stream=None) -> str:
        import sys
        return (stream or sys.stdin).readline().rstrip("\n")
