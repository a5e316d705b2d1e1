"""shared/sealed.py: the code sealed for the event log opens only with its key and while fresh."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from cryptography.fernet import Fernet

from shared.sealed import SealError, new_key, seal, unseal

KEY = "dGVzdC1vbmxpbmUtY29kZS1rZXktMzItYnl0ZXMhISE="


def test_a_sealed_code_is_not_the_code_and_opens_with_the_key():
    token = seal(KEY, "042917")
    assert "042917" not in token
    assert Fernet(KEY.encode()).decrypt(token.encode()) == b"042917"
    assert unseal(KEY, Fernet(KEY.encode()).encrypt(b"123456").decode()) == "123456"


def test_another_key_an_altered_token_an_old_one_or_no_key_cannot_open_it():
    token = seal(KEY, "042917")
    with pytest.raises(SealError):
        unseal(new_key(), token)
    with pytest.raises(SealError):
        unseal(KEY, token[:-4] + ("AAAA" if not token.endswith("AAAA") else "BBBB"))
    old = Fernet(KEY.encode()).encrypt_at_time(b"042917", int(time.time()) - 3600).decode()
    with pytest.raises(SealError):
        unseal(KEY, old, max_age=timedelta(minutes=15))
    with pytest.raises(SealError):
        unseal("", token)
