"""What can go wrong with the key store, each with a message an operator can act on."""


class KeyStoreError(Exception):
    """The key store cannot do what was asked; the message says why and what to do."""


class WrongPassphraseError(KeyStoreError):
    """DIGITAL_ID_KEYS_PASSPHRASE does not open this key store."""


class UnknownKeyError(KeyStoreError):
    """No key with that kid is in the store."""


class KeyRuleError(KeyStoreError):
    """The change would break a safety rule (an algorithm left without an active key, say)."""
