"""Masking of personal data in free text: each common form, and the text around it left alone."""

from __future__ import annotations

import pytest

from pipeline.pii import redact_text

MASKED = [  # (text as typed, as stored)
    ("电话13812345678", "电话[电话]"),
    ("电话 138 1234 5678 谢谢", "电话 [电话] 谢谢"),
    ("手机138-1234-5678", "手机[电话]"),
    ("号码138.1234.5678", "号码[电话]"),
    ("打１３８１２３４５６７８找我", "打[电话]找我"),
    ("拨+86 138 1234 5678", "拨[电话]"),
    ("座机0731-84567890", "座机[电话]"),
    ("座机(0731) 8456 7890", "座机[电话]"),
    ("座机（0731）84567890", "座机[电话]"),
    ("身份证430102199001011234", "身份证[身份证号]"),
    ("身份证 430102 19900101 123X", "身份证 [身份证号]"),
    ("邮箱zhang.san@example.com联系", "邮箱[邮箱]联系"),
    ("发到abc_123＠qq.com", "发到[邮箱]"),
    ("加微信wxid_abc123", "加微信[微信号]"),
    ("微信号：Zhangsan_88", "微信号：[微信号]"),
    ("VX: hello-world9", "VX: [微信号]"),
    ("QQ 123456789", "QQ [QQ号]"),
    ("扣扣：10001234", "扣扣：[QQ号]"),
    ("王五先生反映噪音", "某先生反映噪音"),
    ("请李小红女士回电", "请某女士回电"),
    ("张同志很负责", "某同志很负责"),
    ("张三反映小区路灯不亮", "[姓名]反映小区路灯不亮"),
    ("市民张三来电称", "市民[姓名]来电称"),
    ("业主王小明：物业不管", "业主[姓名]：物业不管"),
    ("我叫王小明，住3栋", "我叫[姓名]，住3栋"),
    ("联系人：李四，请回电", "联系人：[姓名]，请回电"),
    ("来电人赵六反映", "来电人[姓名]反映"),
]

KEPT = [  # ordinary text that looks a little like the above
    "拖欠工资20000元",
    "3栋2单元1201室",
    "2019年11月12日起停水",
    "高温天气，黄色预警，马路上积水",
    "小区居民楼下的路灯不亮，",
    "王家湾小区业主反映电梯故障",
    "A市公交12路",
    "编号20191112001",
    "面积138平方米",
]


@pytest.mark.parametrize(("typed", "stored"), MASKED)
def test_personal_data_is_masked(typed: str, stored: str) -> None:
    assert redact_text(typed) == stored


@pytest.mark.parametrize("text", KEPT)
def test_ordinary_text_is_left_alone(text: str) -> None:
    assert redact_text(text) == text


def test_the_callers_own_name_is_masked_wherever_it_appears() -> None:
    assert redact_text("王小明反映楼道堵塞，王小明多次投诉", ("王小明",)) == "[姓名]反映楼道堵塞，[姓名]多次投诉"
