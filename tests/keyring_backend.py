"""A keyring backend keeping passwords in a JSON file named by $CMAT_TEST_KEYRING: keyring's
own plugin interface, so the tests go through the real `keyring` package."""

import json
import os

from keyring.backend import KeyringBackend


class FileKeyring(KeyringBackend):
    priority = 1

    def _load(self) -> dict:
        try:
            with open(os.environ["CMAT_TEST_KEYRING"]) as handle:
                return json.load(handle)
        except FileNotFoundError:
            return {}

    def get_password(self, service, username):
        return self._load().get(f"{service}/{username}")

    def set_password(self, service, username, password):
        data = self._load()
        data[f"{service}/{username}"] = password
        with open(os.environ["CMAT_TEST_KEYRING"], "w") as handle:
            json.dump(data, handle)

    def delete_password(self, service, username):
        data = self._load()
        data.pop(f"{service}/{username}", None)
        with open(os.environ["CMAT_TEST_KEYRING"], "w") as handle:
            json.dump(data, handle)
