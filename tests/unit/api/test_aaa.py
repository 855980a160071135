"""DefaultAAA: password policy, bcrypt hashing and JWT issue/validation (no DB, no server)."""

from __future__ import annotations

import base64
import json
from datetime import datetime, timedelta, timezone

import jwt
import pytest

from api.aaa import DefaultAAA, password_problems
from api.errors import Unauthorized
from engine.errors import ConfigError

SECRET = "s" * 64


def make_aaa(clock=None, **params) -> DefaultAAA:
    kwargs = {"clock": clock} if clock else {}
    return DefaultAAA({"bcrypt_rounds": 4, **params}, secret=SECRET, **kwargs)


@pytest.mark.parametrize(
    ("password", "fragment"),
    [
        ("Short1", "at least 8"),
        ("alllowercase1", "uppercase"),
        ("NoDigitsHere", "digit"),
        ("A1" + "é" * 36, "72 bytes"),  # 38 characters, 74 bytes
    ],
)
def test_password_policy_names_the_problem(password: str, fragment: str) -> None:
    problems = password_problems(password)
    assert any(fragment in p for p in problems), problems


def test_password_policy_accepts_exactly_72_bytes() -> None:
    assert password_problems("A1" + "x" * 70) == []
    assert password_problems("A1" + "x" * 71) != []


def test_hash_and_verify_round_trip_and_refuse_policy_breakers() -> None:
    aaa = make_aaa()
    hashed = aaa.hash_password("Correct1horse")
    assert hashed.startswith("$2b$04$")
    assert aaa.verify_password("Correct1horse", hashed)
    assert not aaa.verify_password("Correct1hors", hashed)
    # Over 72 bytes never reaches bcrypt (bcrypt 5 would raise ValueError).
    assert not aaa.verify_password("Correct1horse" + "x" * 80, hashed)
    with pytest.raises(ValueError, match="72 bytes"):
        aaa.hash_password("A1" + "x" * 100)


def test_tokens_carry_required_claims_and_decode() -> None:
    aaa = make_aaa()
    tokens = aaa.create_tokens("42", sid="fam-1")
    access = aaa.decode_token(tokens["access_token"], "access")
    refresh = aaa.decode_token(tokens["refresh_token"], "refresh")
    assert access["sub"] == refresh["sub"] == "42"
    assert access["sid"] == refresh["sid"] == "fam-1"
    assert access["jti"] == tokens["access_jti"] and refresh["jti"] == tokens["refresh_jti"]
    assert access["jti"] != refresh["jti"]
    assert access["rjti"] == refresh["jti"] and "rjti" not in refresh
    assert access["exp"] - access["iat"] == 30 * 60
    assert refresh["exp"] - refresh["iat"] == 7 * 24 * 3600
    assert tokens["expires_in"] == 1800


def test_refresh_token_is_not_an_access_token_and_vice_versa() -> None:
    aaa = make_aaa()
    tokens = aaa.create_tokens("1")
    with pytest.raises(Unauthorized, match="expected a access"):
        aaa.decode_token(tokens["refresh_token"], "access")
    with pytest.raises(Unauthorized, match="expected a refresh"):
        aaa.decode_token(tokens["access_token"], "refresh")


def _b64(data: dict) -> str:
    return base64.urlsafe_b64encode(json.dumps(data).encode()).rstrip(b"=").decode()


def test_alg_none_and_wrong_signature_and_other_alg_are_refused() -> None:
    aaa = make_aaa()
    now = int(datetime.now(timezone.utc).timestamp())
    claims = {"sub": "1", "type": "access", "jti": "x", "iat": now, "exp": now + 60}
    unsigned = f"{_b64({'alg': 'none', 'typ': 'JWT'})}.{_b64(claims)}."
    with pytest.raises(Unauthorized):
        aaa.decode_token(unsigned)
    forged = jwt.encode(claims, "another-secret-of-at-least-32-characters", algorithm="HS256")
    with pytest.raises(Unauthorized, match="Signature"):
        aaa.decode_token(forged)
    hs512 = jwt.encode(claims, SECRET, algorithm="HS512")
    with pytest.raises(Unauthorized, match="alg"):
        aaa.decode_token(hs512)


@pytest.mark.parametrize("missing", ["exp", "iat", "sub", "jti", "type"])
def test_each_required_claim_is_required(missing: str) -> None:
    aaa = make_aaa()
    now = int(datetime.now(timezone.utc).timestamp())
    claims = {"sub": "1", "type": "access", "jti": "x", "iat": now, "exp": now + 60}
    del claims[missing]
    token = jwt.encode(claims, SECRET, algorithm="HS256")
    with pytest.raises(Unauthorized):
        aaa.decode_token(token)


def test_expired_by_one_second_is_refused() -> None:
    issued = datetime.now(timezone.utc) - timedelta(minutes=30, seconds=1)
    old = make_aaa(clock=lambda: issued)
    token = old.create_tokens("1")["access_token"]
    with pytest.raises(Unauthorized, match="expired"):
        make_aaa().decode_token(token)


def test_secret_is_required_and_must_be_long() -> None:
    aaa = DefaultAAA({"bcrypt_rounds": 4})
    with pytest.raises(ConfigError, match="signing secret"):
        aaa.create_tokens("1")
    with pytest.raises(ConfigError, match="at least 32"):
        aaa.set_secret("short")


def test_bad_parameter_is_a_config_error_naming_it() -> None:
    aaa = DefaultAAA({"access_token_minutes": "thirty"}, secret=SECRET)
    with pytest.raises(ConfigError, match="access_token_minutes"):
        aaa.create_tokens("1")
