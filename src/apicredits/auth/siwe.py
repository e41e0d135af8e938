"""Sign-In with Ethereum (EIP-4361): tenant owners sign in to the control plane with a wallet.

The control plane hands out a nonce; the wallet signs (EIP-191 ``personal_sign``) a message

    {scheme://}{domain} wants you to sign in with your Ethereum account:
    {address}

    {statement}

    URI: {uri}
    Version: 1
    Chain ID: {chain_id}
    Nonce: {nonce}
    Issued At: {issued_at}
    Expiration Time: {expiration_time}      (optional, as are the lines below)
    Not Before: {not_before}
    Request ID: {request_id}
    Resources:
    - {resource}

and ``verify_siwe`` checks it: strict parsing of the ERC-4361 ABNF (``parse_siwe``), the
expected domain (and scheme, URI, chain), the time window, the signer (EOA signatures only, no
EIP-1271 contract wallets) and finally the nonce, which ``nonce_check`` must accept exactly once.
Without a statement the statement line and its blank line collapse to one blank line, as in the
ABNF and the reference implementation.

Every refusal is a ``SiweError``: a ``TokenError`` (401) whose ``reason`` is one of the token
reasons and whose ``field`` names the message field at fault. Timestamps are kept as the RFC
3339 text that was signed, so ``parse_siwe(text).to_text() == text`` for every accepted text.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta, timezone
from urllib.parse import urlsplit

from eth_account import Account
from eth_account.messages import encode_defunct
from eth_keys.exceptions import BadSignature
from eth_utils.address import is_checksum_address
from eth_utils.exceptions import ValidationError as KeyValidationError

from apicredits.auth.errors import TokenError, TokenReason

__all__ = ["SiweError", "SiweMessage", "parse_rfc3339", "parse_siwe", "rfc3339", "verify_siwe"]

MAX_MESSAGE_CHARS = 8192
MAX_NONCE_CHARS = 128
_HEADER = " wants you to sign in with your Ethereum account:"
# RFC 3986 character classes, as the ABNF uses them.
_UNRESERVED = r"A-Za-z0-9\-._~"
_SUB_DELIMS = r"!$&'()*+,;="
_RESERVED = r":/?#\[\]@" + _SUB_DELIMS
_SCHEME = re.compile(r"[A-Za-z][A-Za-z0-9+.\-]*")
_AUTHORITY = re.compile(
    rf"(?:[{_UNRESERVED}{_SUB_DELIMS}:%]*@)?[{_UNRESERVED}{_SUB_DELIMS}%\[\]:]+"
)
_URI = re.compile(rf"[A-Za-z][A-Za-z0-9+.\-]*:[{_UNRESERVED}{_RESERVED}%]*")
_STATEMENT = re.compile(rf"[{_UNRESERVED}{_RESERVED} ]+")
_ADDRESS = re.compile(r"0x[0-9A-Fa-f]{40}")
_CHAIN_ID = re.compile(r"[1-9][0-9]{0,19}")
_NONCE = re.compile(rf"[A-Za-z0-9]{{8,{MAX_NONCE_CHARS}}}")
_REQUEST_ID = re.compile(rf"[{_UNRESERVED}{_SUB_DELIMS}:@%]*")
_DATE_TIME = re.compile(
    r"(\d{4})-(\d{2})-(\d{2})[Tt](\d{2}):(\d{2}):(\d{2})(\.\d{1,9})?"
    r"(?:([Zz])|([+-])(\d{2}):(\d{2}))"
)
_SIGNATURE = re.compile(r"(?:0x)?([0-9A-Fa-f]{130})")


class SiweError(TokenError):
    """A sign-in message was refused; ``field`` names the part of the message at fault."""

    def __init__(self, reason: TokenReason, message: str, *, field: str) -> None:
        super().__init__(reason, message)
        self.field = field
        self.details["field"] = field


def _malformed(field: str, message: str) -> SiweError:
    return SiweError("malformed", f"malformed sign-in message: {message}", field=field)


def parse_rfc3339(text: str, field: str = "issued_at") -> datetime:
    """An aware datetime from an RFC 3339 ``date-time``; ``SiweError`` (malformed) otherwise."""
    match = _DATE_TIME.fullmatch(text)
    if match is None:
        raise _malformed(field, f"{field} is not an RFC 3339 date-time")
    year, month, day, hour, minute, second = (int(match[i]) for i in range(1, 7))
    fraction = match[7] or ""
    microsecond = int((fraction[1:] + "000000")[:6]) if fraction else 0
    if match[8]:
        zone = UTC
    else:
        hours, minutes = int(match[10]), int(match[11])
        if hours > 23 or minutes > 59:
            raise _malformed(field, f"{field} has an invalid offset")
        sign = 1 if match[9] == "+" else -1
        zone = timezone(sign * timedelta(hours=hours, minutes=minutes))
    try:
        return datetime(year, month, day, hour, minute, second, microsecond, tzinfo=zone)
    except ValueError as error:  # 2023-02-30, 25:00, a leap second
        raise _malformed(field, f"{field} is not a valid date-time") from error


def rfc3339(moment: datetime) -> str:
    """``moment`` (aware) as RFC 3339 UTC text with a ``Z``, whole seconds unless it has
    microseconds."""
    if moment.tzinfo is None:
        raise ValueError("an RFC 3339 time needs a timezone")
    utc = moment.astimezone(UTC)
    text = utc.strftime("%Y-%m-%dT%H:%M:%S")
    if utc.microsecond:
        text += f".{utc.microsecond:06d}"
    return text + "Z"


def _valid_authority(domain: str) -> bool:
    if not _AUTHORITY.fullmatch(domain):
        return False
    try:
        parts = urlsplit(f"//{domain}")
        return bool(parts.hostname) and (parts.port is None or parts.port >= 0)
    except ValueError:  # a bad port or bracketed host
        return False


@dataclass(frozen=True, kw_only=True)
class SiweMessage:
    """One EIP-4361 message. Times are RFC 3339 text (see ``rfc3339``); ``address`` must be
    EIP-55 checksummed. Construction validates every field (``SiweError``, malformed)."""

    domain: str
    address: str
    uri: str
    chain_id: int
    nonce: str
    issued_at: str
    version: str = "1"
    statement: str | None = None
    expiration_time: str | None = None
    not_before: str | None = None
    request_id: str | None = None
    resources: tuple[str, ...] = ()
    scheme: str | None = None

    def __post_init__(self) -> None:
        if self.scheme is not None and not _SCHEME.fullmatch(self.scheme):
            raise _malformed("scheme", "the scheme is not an RFC 3986 scheme")
        if not isinstance(self.domain, str) or not _valid_authority(self.domain):
            raise _malformed("domain", "the domain is not an RFC 3986 authority")
        if not isinstance(self.address, str) or not _ADDRESS.fullmatch(self.address):
            raise _malformed("address", "the address is not 0x and 40 hex digits")
        if not is_checksum_address(self.address):
            raise _malformed("address", "the address is not EIP-55 checksummed")
        if self.statement is not None and not (
            isinstance(self.statement, str) and _STATEMENT.fullmatch(self.statement)
        ):
            raise _malformed("statement", "the statement has characters the ABNF excludes")
        if not isinstance(self.uri, str) or not _URI.fullmatch(self.uri):
            raise _malformed("uri", "the URI is not an RFC 3986 URI")
        if self.version != "1":
            raise _malformed("version", 'the version must be "1"')
        if type(self.chain_id) is not int or not _CHAIN_ID.fullmatch(str(self.chain_id)):
            raise _malformed("chain_id", "the chain id is a positive integer")
        if not isinstance(self.nonce, str) or not _NONCE.fullmatch(self.nonce):
            raise _malformed("nonce", "the nonce is 8 to 128 letters and digits")
        for field in ("issued_at", "expiration_time", "not_before"):
            value = getattr(self, field)
            if value is not None:
                if not isinstance(value, str):
                    raise _malformed(field, f"{field} is RFC 3339 text")
                parse_rfc3339(value, field)
        if self.request_id is not None and not (
            isinstance(self.request_id, str) and _REQUEST_ID.fullmatch(self.request_id)
        ):
            raise _malformed("request_id", "the request id is not a run of pchars")
        if not isinstance(self.resources, tuple) or not all(
            isinstance(r, str) and _URI.fullmatch(r) for r in self.resources
        ):
            raise _malformed("resources", "resources are a tuple of RFC 3986 URIs")

    def to_text(self) -> str:
        """The exact EIP-4361 text a wallet signs."""
        origin = f"{self.scheme}://{self.domain}" if self.scheme else self.domain
        lines = [origin + _HEADER, self.address, ""]
        lines += [self.statement, ""] if self.statement is not None else [""]
        lines += [
            f"URI: {self.uri}",
            f"Version: {self.version}",
            f"Chain ID: {self.chain_id}",
            f"Nonce: {self.nonce}",
            f"Issued At: {self.issued_at}",
        ]
        if self.expiration_time is not None:
            lines.append(f"Expiration Time: {self.expiration_time}")
        if self.not_before is not None:
            lines.append(f"Not Before: {self.not_before}")
        if self.request_id is not None:
            lines.append(f"Request ID: {self.request_id}")
        if self.resources:
            lines.append("Resources:")
            lines += [f"- {resource}" for resource in self.resources]
        return "\n".join(lines)


_REQUIRED = (("uri", "URI: "), ("version", "Version: "), ("chain_id", "Chain ID: "),
             ("nonce", "Nonce: "), ("issued_at", "Issued At: "))  # fmt: skip
_OPTIONAL = (("expiration_time", "Expiration Time: "), ("not_before", "Not Before: "),
             ("request_id", "Request ID: "))  # fmt: skip


def parse_siwe(text: object) -> SiweMessage:
    """The message ``text`` spells, exactly in the ERC-4361 layout; ``SiweError`` (malformed)
    for anything else, including CR line ends, a trailing newline and non-canonical numbers."""
    if not isinstance(text, str) or not 0 < len(text) <= MAX_MESSAGE_CHARS:
        raise _malformed("message", "not a sign-in message of acceptable size")
    lines = text.split("\n")
    if len(lines) < 9 or not lines[0].endswith(_HEADER):
        raise _malformed("message", "the first line is not a sign-in request")
    origin = lines[0][: -len(_HEADER)]
    scheme, separator, domain = origin.rpartition("://")
    if lines[2] != "":
        raise _malformed("message", "a blank line must follow the address")
    if lines[3] == "":
        statement, index = None, 4
    elif lines[4] == "":
        statement, index = lines[3], 5
    else:
        raise _malformed("statement", "the statement is one line followed by a blank line")
    fields: dict[str, str] = {}
    for name, tag in _REQUIRED:
        if index >= len(lines) or not lines[index].startswith(tag):
            raise _malformed(name, f"expected a {tag.strip()!r} line")
        fields[name] = lines[index][len(tag) :]
        index += 1
    for name, tag in _OPTIONAL:
        if index < len(lines) and lines[index].startswith(tag):
            fields[name] = lines[index][len(tag) :]
            index += 1
    resources: list[str] = []
    if index < len(lines) and lines[index] == "Resources:":
        for line in lines[index + 1 :]:
            if not line.startswith("- "):
                raise _malformed("resources", "each resource line is '- ' and a URI")
            resources.append(line[2:])
        index = len(lines)
    if index != len(lines):
        raise _malformed("message", f"unexpected line {index + 1}")
    chain_id = fields.pop("chain_id")
    if not _CHAIN_ID.fullmatch(chain_id):
        raise _malformed("chain_id", "the chain id is a positive integer without leading zeros")
    message = SiweMessage(
        domain=domain,
        address=lines[1],
        statement=statement,
        chain_id=int(chain_id),
        resources=tuple(resources),
        scheme=scheme if separator else None,
        **fields,
    )
    if message.to_text() != text:  # one spelling per message, whatever slipped through above
        raise _malformed("message", "the message is not in its canonical layout")
    return message


def _instant(now: int | datetime) -> datetime:
    if isinstance(now, datetime):
        if now.tzinfo is None:
            raise ValueError("now must be timezone-aware")
        return now
    return datetime.fromtimestamp(now, UTC)


def _signer(text: str, signature_hex: object) -> str | None:
    match = _SIGNATURE.fullmatch(signature_hex) if isinstance(signature_hex, str) else None
    if match is None:
        raise SiweError("malformed", "the signature is 65 bytes of hex", field="signature")
    signature = bytes.fromhex(match[1])
    if signature[64] not in (0, 1, 27, 28):
        raise SiweError("bad_signature", "the signature recovery id is invalid", field="signature")
    try:
        signer = Account.recover_message(encode_defunct(text=text), signature=signature)
    except (BadSignature, KeyValidationError, ValueError):
        return None
    return str(signer)


def verify_siwe(
    text: object,
    signature_hex: object,
    *,
    domain: str,
    now: int | datetime,
    nonce_check: Callable[[str], bool],
    uri: str | None = None,
    chain_id: int | None = None,
    scheme: str = "https",
    leeway: int = 30,
) -> SiweMessage:
    """The message ``text`` if its signer is its address and it is meant for ``domain`` (and
    ``uri`` / ``chain_id`` when given, and ``scheme`` when the message names one), now.

    ``now`` is Unix seconds or an aware datetime. ``nonce_check`` is called last, only for an
    otherwise valid message, and must return True once per nonce it issued (then forget it).
    Raises ``SiweError``: ``malformed``, ``wrong_audience`` (domain, scheme, uri, chain_id),
    ``expired``, ``not_yet_valid`` (not_before, issued_at), ``bad_signature``, or ``replayed``
    for a nonce that is unknown or already used.
    """
    if not isinstance(text, str):
        raise _malformed("message", "a sign-in message is text")
    message = parse_siwe(text)
    if message.domain != domain:
        raise SiweError("wrong_audience", "the message is for another domain", field="domain")
    if message.scheme is not None and message.scheme != scheme:
        raise SiweError("wrong_audience", "the message is for another scheme", field="scheme")
    if uri is not None and message.uri != uri:
        raise SiweError("wrong_audience", "the message is for another URI", field="uri")
    if chain_id is not None and message.chain_id != chain_id:
        raise SiweError("wrong_audience", "the message is for another chain", field="chain_id")
    moment, slack = _instant(now), timedelta(seconds=leeway)
    if message.expiration_time is not None and moment >= (
        parse_rfc3339(message.expiration_time, "expiration_time") + slack
    ):
        raise SiweError("expired", "the sign-in message has expired", field="expiration_time")
    if message.not_before is not None and moment + slack < parse_rfc3339(
        message.not_before, "not_before"
    ):
        raise SiweError("not_yet_valid", "the sign-in message is not valid yet", field="not_before")
    if moment + slack < parse_rfc3339(message.issued_at, "issued_at"):
        raise SiweError(
            "not_yet_valid", "the sign-in message is issued in the future", field="issued_at"
        )
    if _signer(text, signature_hex) != message.address:
        raise SiweError(
            "bad_signature", "the message is not signed by its address", field="address"
        )
    if not nonce_check(message.nonce):
        raise SiweError("replayed", "the nonce is unknown or already used", field="nonce")
    return message
