"""Re-encrypt every stored CRM credential with the first key of FIELD_ENCRYPTION_KEYS."""

from django.core.management.base import BaseCommand
from django.db import transaction

from integrations import crypto
from integrations.models import Connection


class Command(BaseCommand):
    help = "Re-encrypt stored CRM credentials with the first key of FIELD_ENCRYPTION_KEYS."

    def handle(self, *args, **options) -> None:
        rotated = 0
        with transaction.atomic():
            for connection in Connection.objects.select_for_update().only("encrypted_credentials"):
                connection.encrypted_credentials = crypto.rotate(connection.encrypted_credentials)
                connection.save(update_fields=["encrypted_credentials"])
                rotated += 1
        self.stdout.write(self.style.SUCCESS(f"Re-encrypted {rotated} connection(s)."))
