"""Keep caller identity out of everything downstream of the normaliser.

Phone numbers become a salted SHA-256 (enough to merge repeat callers, useless to read);
numbers that citizens type into free text are masked in place, and so are names: the caller's own
name wherever it appears, a name after 我叫 / 联系人 / 姓名, and the surname in 张先生 / 李女士.
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


# A name introduced as one: 我叫王小明, 联系人：李四, 姓名:张三 (two or three characters after it).
_INTRODUCED_NAME = re.compile(r"(我叫|联系人[:：]?|姓名[:：]?)\s*[\u4e00-\u9fff]{2,3}")
# The hundred commonest surnames before a form of address: 张先生 → 某先生.
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
             "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤")
_ADDRESSED = re.compile(f"[{_SURNAMES}](?=先生|女士|小姐|阿姨|师傅|大爷|大妈)")


def redact_text(text: str, names: tuple[str | None, ...] = ()) -> str:
    """`text` with ID numbers, phone numbers and personal names masked; `names`: names known to be
    personal here (the caller's), masked wherever they appear."""
    text = _RESIDENT_ID.sub("[身份证号]", text)
    text = _MOBILE.sub("[电话]", text)
    text = _LANDLINE.sub("[电话]", text)
    for name in names:
        if name and len(name.strip()) >= 2:
            text = text.replace(name.strip(), "[姓名]")
    text = _INTRODUCED_NAME.sub(lambda m: f"{m.group(1)}[姓名]", text)
    return _ADDRESSED.sub("某", text)
