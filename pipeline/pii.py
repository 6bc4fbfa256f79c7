"""Keep caller identity out of everything downstream of the normaliser.

Phone numbers become a salted SHA-256 (enough to merge repeat callers, useless to read);
numbers that citizens type into free text are masked in place.
"""

from __future__ import annotations

import hashlib
import re

# Mainland mobiles, landlines with area code, 18-character resident ID numbers.
_MOBILE = re.compile(r"(?<!\d)1[3-9]\d{9}(?!\d)")
_LANDLINE = re.compile(r"(?<!\d)0\d{2,3}-\d{7,8}(?!\d)")
_RESIDENT_ID = re.compile(r"(?<![0-9A-Za-z])\d{17}[\dXx](?![0-9A-Za-z])")


def hash_contact(phone: str | None, salt: str) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return hashlib.sha256(f"{salt}:{digits}".encode()).hexdigest()


def redact_text(text: str) -> str:
    text = _RESIDENT_ID.sub("[身份证号]", text)
    text = _MOBILE.sub("[电话]", text)
    return _LANDLINE.sub("[电话]", text)
