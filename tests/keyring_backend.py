"""A keyring backend for the tests: passwords in a JSON file named by ``$CHATREPL_TEST_KEYRING``,
selected with ``PYTHON_KEYRING_BACKEND=keyring_backend.FileKeyring`` (this folder on the path).

It stands in for the operating system's keyring, which a test machine does not have."""

from __future__ import annotations

import json
import os
from pathlib import Path

from keyring.backend import KeyringBackend
from keyring.errors import PasswordDeleteError


class FileKeyring(KeyringBackend):
    """Every (service, user) → password in one JSON file."""

    priority = 1  # type: ignore[assignment]

    @property
    def path(self) -> Path:
        return Path(os.environ["CHATREPL_TEST_KEYRING"])

    def _all(self) -> dict[str, str]:
        try:
            return json.loads(self.path.read_text())
        except FileNotFoundError:
            return {}

    def get_password(self, service: str, username: str) -> str | None:
        return self._all().get(f"{service}/{username}")

    def set_password(self, service: str, username: str, password: str) -> None:
        data = self._all()
        data[f"{service}/{username}"] = password
        self.path.write_text(json.dumps(data))

    def delete_password(self, service: str, username: str) -> None:
        data = self._all()
        if f"{service}/{username}" not in data:
            raise PasswordDeleteError("not set")
        del data[f"{service}/{username}"]
        self.path.write_text(json.dumps(data))
