"""Keep caller identity out of everything downstream of the normaliser.

Phone numbers become a salted SHA-256 (enough to merge repeat callers, useless to read). What
citizens type into free text is masked in place by `redact_text`, the one function every text that
leaves the intake stage goes through (report title, text and address; a department's note, result
and reasons; an operator's note):

- phone numbers (mobile and landline, with spaces, dashes or dots between the digits, full-width
  digits, +86 or a bracketed area code), resident ID numbers, e-mail addresses, WeChat and QQ ids;
- names: the caller's own wherever it appears; a name after 我叫 / 联系人 / 姓名 / 市民 / 业主 / 来电人 …;
  a name before 先生 / 女士 / 同志 … (王五先生 → 某先生); a name before 反映 / 来电 / 投诉 … at the start of
  a sentence. A bare name with none of these around it is not recognised.
"""

from __future__ import annotations

import hashlib
import re

_D = "[0-9０-９]"  # a digit, ASCII or full width
_SEP = r"[ \u3000\-－–—.·]?"  # what people put between digit groups
_NOT_DIGIT_BEFORE = r"(?<![0-9０-９])"
_NOT_DIGIT_AFTER = r"(?![0-9０-９])"
# Mainland mobiles (1[3-9] and 9 more digits), optionally after +86 / 86.
_MOBILE = re.compile(rf"(?:[+＋]?(?:86|８６){_SEP})?{_NOT_DIGIT_BEFORE}[1１]{_SEP}[3-9３-９](?:{_SEP}{_D}){{9}}"
                     rf"{_NOT_DIGIT_AFTER}")
# Landlines with an area code: 0731-88886666, (0731) 8888 6666, 0731 88886666.
_LANDLINE = re.compile(rf"{_NOT_DIGIT_BEFORE}[(（]?[0０]{_D}{{2,3}}[)）]?{_SEP}{_D}{{3,4}}{_SEP}{_D}{{4}}"
                       rf"{_NOT_DIGIT_AFTER}")
# 18-character resident ID numbers, also in groups (430102 19900101 1234).
_RESIDENT_ID = re.compile(rf"(?<![0-9A-Za-z０-９]){_D}{{6}}{_SEP}{_D}{{8}}{_SEP}{_D}{{3}}[0-9０-９XxＸｘ]"
                          r"(?![0-9A-Za-z０-９])")
_EMAIL = re.compile(r"[A-Za-z0-9._%+\-]+[@＠][A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)*\.[A-Za-z]{2,}")
# WeChat ids (6–20 characters, a letter first) and QQ numbers (5–11 digits) after what names them.
_WECHAT = re.compile(r"((?:微信|威信|wechat|WeChat|VX|vx|Vx|WX|wx|V信)(?:号|账号|ID|id)?\s*[:：是为]?\s*)"
                     r"[A-Za-z][-_A-Za-z0-9]{5,19}")
_QQ = re.compile(r"((?:QQ|qq|扣扣)(?:号|群)?\s*[:：是为]?\s*)[1-9１-９][0-9０-９]{4,10}(?![0-9０-９])")

_HAN = "[\u4e00-\u9fff]"
# The hundred commonest surnames (and a few more): a name starts with one.
_SURNAMES = ("王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁"
             "任沈姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向汤"
             "易常温康施文牛樊葛邢安齐伍庞颜倪聂章鲁岳翟殷詹欧申耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕单季裴霍涂成苗谷盛曲")
_NAME = f"[{_SURNAMES}]{_HAN}{{0,2}}"
_NAME_ENDS = r"(?=$|[\s，,。；;：:！!？?（(、]|反映|来电|投诉|举报|求助|咨询|表示|称|说|先生|女士)"
# A name introduced as one: 我叫王小明, 联系人：李四, 姓名:张三, 来电人李四 (any two or three characters);
# after 市民 / 业主 / 我是 … only what starts like a name (市民张三反映; not 居民楼下).
_INTRODUCED_NAME = re.compile(r"(我叫|联系人|姓名|名字|来电人|反映人|投诉人|举报人|报告人|申请人|当事人)([:：]?\s*)"
                              rf"{_HAN}{{2,3}}{_NAME_ENDS}")
_ROLE_NAME = re.compile(rf"(我是|本人|市民|居民|业主|村民)([:：]?\s*)[{_SURNAMES}]{_HAN}{{1,2}}{_NAME_ENDS}")
# A name before a form of address: 张先生, 王五先生, 李小红女士 → 某先生.
_ADDRESSED = re.compile(f"{_NAME}(?=先生|女士|小姐|同志|阿姨|师傅|大爷|大妈|老师|老板)")
# A name opening a sentence before what it does: 张三反映…, 李四来电…
_ACTING = re.compile(rf"(^|[\s，,。；;：:！!？?])({_NAME})(?=反映|来电|投诉|举报|求助|咨询)")


def hash_contact(phone: str | None, salt: str) -> str | None:
    if not phone:
        return None
    digits = re.sub(r"\D", "", phone)
    return hashlib.sha256(f"{salt}:{digits}".encode()).hexdigest()


def redact_text(text: str, names: tuple[str | None, ...] = ()) -> str:
    """`text` with ID numbers, phone numbers, e-mail, WeChat and QQ ids and personal names masked;
    `names`: names known to be personal here (the caller's), masked wherever they appear."""
    text = _EMAIL.sub("[邮箱]", text)
    text = _RESIDENT_ID.sub("[身份证号]", text)
    text = _MOBILE.sub("[电话]", text)
    text = _LANDLINE.sub("[电话]", text)
    text = _WECHAT.sub(lambda m: f"{m.group(1)}[微信号]", text)
    text = _QQ.sub(lambda m: f"{m.group(1)}[QQ号]", text)
    for name in names:
        if name and len(name.strip()) >= 2:
            text = text.replace(name.strip(), "[姓名]")
    text = _INTRODUCED_NAME.sub(lambda m: f"{m.group(1)}{m.group(2)}[姓名]", text)
    text = _ROLE_NAME.sub(lambda m: f"{m.group(1)}{m.group(2)}[姓名]", text)
    text = _ACTING.sub(lambda m: f"{m.group(1)}[姓名]", text)
    return _ADDRESSED.sub("某", text)
