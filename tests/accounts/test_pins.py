from datetime import date

import pytest

from digital_id.accounts.pins import InvalidPinError, PinHasher, check_pin_rules

BIRTH = date(1990, 10, 20)


@pytest.mark.parametrize(
    ("pin", "rule"),
    [
        ("12345", "format"),
        ("1234567", "format"),
        ("12a456", "format"),
        ("١٢٣٤٥٦", "format"),
        ("777777", "repeated"),
        ("123456", "sequence"),
        ("654321", "sequence"),
        ("345678", "sequence"),
        ("201090", "birth_date"),
    ],
)
def test_each_pin_rule(pin, rule):
    with pytest.raises(InvalidPinError) as error:
        check_pin_rules(pin, birth_date=BIRTH)
    assert error.value.rule == rule


@pytest.mark.parametrize("pin", ["246810", "135792", "901234", "102090"])
def test_ordinary_pins_pass(pin):
    check_pin_rules(pin, birth_date=BIRTH)


def test_pins_are_argon2id_over_a_peppered_hmac():
    hasher = PinHasher(b"p" * 32, memory_kib=64, time_cost=1)
    stored = hasher.hash("246810")
    assert stored.startswith("$argon2id$")
    assert "246810" not in stored
    assert hasher.verify(stored, "246810")
    assert not hasher.verify(stored, "246811")
    assert not PinHasher(b"q" * 32, memory_kib=64, time_cost=1).verify(stored, "246810"), (
        "the pepper matters"
    )
    assert not hasher.verify(None, "000000"), "the dummy hash never logs anyone in"
