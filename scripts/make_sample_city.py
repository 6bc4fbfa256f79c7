"""Generate the sample city's registry (units.yaml, grids.geojson) in pipeline/data/sample-city.

"A市" is the anonymised city of the real citizen messages in ../shared/data/zh-gov-messages. Its
districts (A1区 … A9市) and the streets and towns listed here are the ones those messages name
most often, under the district they name them with. Communities, grid codes and polygons are
synthetic: a plausible lattice (streets ≈ 2 km squares, grids ≈ 500 m), not a survey.
A few estates (小区) that messages name together with one street are aliases of a community of
that street, so real address text can resolve below street level.

Run: .venv/bin/python scripts/make_sample_city.py
The output is committed; re-running with the same inputs rewrites the same files.
"""

from __future__ import annotations

import collections
import json
from pathlib import Path

import yaml

OUT = Path(__file__).resolve().parents[1] / "pipeline" / "data" / "sample-city"

# code, name, adcode, meta-lattice (row, col), streets/towns as the messages name them (most named first)
DISTRICTS = [
    ("a1", "A1区", "430102", (1, 1), ["马王堆街道", "朝阳街道", "马坡岭街道", "火星街道", "定王台街道", "荷花园街道", "东岸街道", "东湖街道"]),
    ("a2", "A2区", "430103", (0, 1), ["暮云街道", "桂花坪街道", "南托街道", "先锋街道", "坡子街街道", "新开铺街道", "大托铺街道", "金盆岭街道",
                                      "黑石铺街道", "裕南街街道"]),
    ("a3", "A3区", "430104", (1, 0), ["天顶街道", "西湖街道", "学士街道", "莲花镇", "观沙岭街道", "含浦街道", "雨敞坪镇",
                                      "梅溪湖街道", "坪塘街道", "洋湖街道", "咸嘉湖街道", "银盆岭街道", "望岳街道", "东方红街道",
                                      "雷锋街道"]),
    ("a4", "A4区", "430105", (2, 1), ["捞刀河街道", "沙坪街道", "青竹湖街道", "秀峰街道", "东风路街道", "新河街道",
                                      "四方坪街道", "伍家岭街道", "东兴园街道", "望麓园街道", "月湖街道"]),
    ("a5", "A5区", "430111", (0, 2), ["洞井街道", "跳马镇", "东塘街道", "井湾子街道", "左家塘街道", "黎托街道", "高桥街道"]),
    ("a6", "A6区", "430112", (2, 0), ["高塘岭街道", "月亮岛街道", "金山桥街道", "乔口镇", "白箬铺镇", "丁字湾街道",
                                      "黄金园街道", "乌山街道", "大泽湖街道", "桥驿镇"]),
    ("a7", "A7县", "430121", (2, 2), ["泉塘街道", "星沙街道", "黄兴镇", "楚龙街道", "黄花镇", "安沙镇", "北山镇", "春华镇",
                                      "江背镇", "榔梨街道", "青山铺镇", "高桥镇", "金井镇", "路口镇", "长龙街道", "果园镇",
                                      "干杉街道", "福临镇", "开慧镇", "双江镇"]),
    ("a8", "A8县", "430182", (0, 0), ["城郊街道", "灰汤镇", "流沙河镇", "老粮仓镇", "沙田乡", "双凫铺镇", "白马桥街道",
                                      "道林镇", "横市镇", "沩山乡", "东湖塘镇", "煤炭坝镇", "青山桥镇", "金洲镇",
                                      "龙田镇"]),
    ("a9", "A9市", "430181", (1, 2), ["镇头镇", "关口街道", "官桥镇", "永安镇", "金刚镇", "北盛镇", "集里街道", "淮川街道", "沿溪镇", "柏加镇", "大围山镇", "普迹镇",
                                      "枨冲镇", "古港镇", "张坊镇"]),
]
# Older or colloquial names the messages also use for the same place.
STREET_ALIASES = {"星沙街道": ["星沙镇"], "暮云街道": ["暮云镇"], "火星街道": ["火星镇"], "捞刀河街道": ["捞刀河镇"],
                  "青竹湖街道": ["青竹湖镇"], "洞井街道": ["洞井镇", "洞井乡"], "含浦街道": ["含浦镇"], "坪塘街道": ["坪塘镇"],
                  "雨敞坪镇": ["雨厂坪镇"], "榔梨街道": ["榔梨镇"], "干杉街道": ["干杉乡", "干杉镇"], "东岸街道": ["东岸乡"],
                  "城郊街道": ["城郊乡"], "横市镇": ["横市乡"],
                  "坡子街街道": ["坡子街道"], "天顶街道": ["天顶乡"], "东方红街道": ["东方红镇"], "雷锋街道": ["雷锋镇"],
                  "黎托街道": ["黎托乡"], "丁字湾街道": ["丁字镇"], "高塘岭街道": ["高塘岭镇"], "乌山街道": ["乌山镇"],
                  "白马桥街道": ["白马桥乡"]}

DEPARTMENTS = [
    ("ccc", "市城市运行管理中心", "centre"), ("cgj", "市城市管理和综合执法局", "department"),
    ("zjj", "市住房和城乡建设局", "department"), ("zrzyj", "市自然资源和规划局", "department"),
    ("sthjj", "市生态环境局", "department"), ("slj", "市水利局", "department"), ("jtysj", "市交通运输局", "department"),
    ("gaj", "市公安局", "department"), ("gaj-jj", "市公安局交通警察支队", "department"), ("jyj", "市教育局", "department"),
    ("rsj", "市人力资源和社会保障局", "department"), ("ybj", "市医疗保障局", "department"), ("swj", "市商务局", "department"),
    ("scjgj", "市市场监督管理局", "department"), ("wjw", "市卫生健康委员会", "department"), ("mzj", "市民政局", "department"),
    ("xfzd", "市消防救援支队", "department"), ("yjglj", "市应急管理局", "department"), ("wlgj", "市文化旅游广电局", "department"),
    ("tyj", "市体育局", "department"), ("ylj", "市园林绿化局", "department"), ("nyncj", "市农业农村局", "department"),
    ("gxj", "市工业和信息化局", "department"), ("fgw", "市发展和改革委员会", "department"), ("sfj", "市司法局", "department"),
    ("gjj", "市住房公积金管理中心", "department"), ("tyjrj", "市退役军人事务局", "department"),
    ("rfb", "市人民防空办公室", "department"), ("gsgs", "市供水有限公司", "department"),
    ("gdgs", "国网A市供电公司", "department"), ("rqjt", "市燃气集团", "department"), ("gjjt", "市公交集团", "department"),
    ("yzj", "市邮政管理局", "department"), ("dtjt", "市轨道交通集团", "department"),
]

# Other names of the departments, as government replies and citizens write them (a county's bureau
# of the same function included: A3区住建局 is housing and construction): how a reply's handler is
# matched to a unit (pipeline.dispatch_eval.reply_handlers).
DEPARTMENT_ALIASES = {
    "cgj": ["城管局", "城管执法", "城市管理局", "城管"], "zjj": ["住建局", "住房和城乡建设局", "住建委", "房屋交易管理中心"],
    "zrzyj": ["自然资源和规划局", "自然资源局", "国土资源局", "规划局", "不动产登记中心"],
    "sthjj": ["生态环境局", "环保局", "环境保护局", "生态环境分局"], "slj": ["水利局", "水务局"],
    "jtysj": ["交通运输局", "交通局", "运管处"], "gaj": ["公安局", "公安分局", "派出所"],
    "gaj-jj": ["交警支队", "交警大队", "交警"], "jyj": ["教育局", "教育体育局"],
    "rsj": ["人力资源和社会保障局", "人社局", "社保局", "劳动监察"], "ybj": ["医疗保障局", "医保局"],
    "swj": ["商务局"], "scjgj": ["市场监督管理局", "市场监管局", "工商局", "市场监管"],
    "wjw": ["卫生健康委员会", "卫健委", "卫生健康局", "卫健局", "卫生局"], "mzj": ["民政局"],
    "xfzd": ["消防救援", "消防大队"], "yjglj": ["应急管理局", "安监局"],
    "wlgj": ["文化旅游广电局", "文旅广电局", "文旅局", "文化旅游局"], "tyj": ["体育局"],
    "ylj": ["园林绿化局", "园林局"], "nyncj": ["农业农村局", "农业局", "农村农业局"],
    "gxj": ["工业和信息化局", "工信局"], "fgw": ["发展和改革委员会", "发改委", "发改局"], "sfj": ["司法局"],
    "gjj": ["住房公积金管理中心", "公积金中心", "公积金管理中心"], "tyjrj": ["退役军人事务局"],
    "rfb": ["人民防空办公室", "人防办"], "gsgs": ["供水有限公司", "供水公司", "自来水公司"],
    "gdgs": ["供电公司", "电力公司", "供电局"], "rqjt": ["燃气集团", "燃气公司"], "gjjt": ["公交集团", "公交公司"],
    "yzj": ["邮政管理局"], "dtjt": ["轨道交通集团", "地铁集团"],
}

STREET_DEG = 0.02  # a street or town ≈ 2 km square
DISTRICT_DEG = 0.12  # district blocks on a 3×3 meta-lattice, ≈ 12 km apart
ORIGIN = (28.05, 112.80)  # south-west corner (lat, lon)
# Estates (小区) that real messages name together with one street, read and checked by hand.
ESTATES = {"马王堆街道": ["同鑫家园"], "暮云街道": ["丽发新城小区", "丽发新城"], "南托街道": ["南塘小区"],
           "新开铺街道": ["福满新城"], "天顶街道": ["青青家园"], "西湖街道": ["熊家湾小区"], "学士街道": ["裕园小区"],
           "洋湖街道": ["莲香园小区"], "咸嘉湖街道": ["高心麓城"], "银盆岭街道": ["金色山庄小区"],
           "青竹湖街道": ["太阳山小区"], "伍家岭街道": ["景致雅苑", "瑞都豪庭", "宜家楚颂"], "洞井街道": ["长安郡小区"],
           "东塘街道": ["之都佳苑"]}
STEM_A = "东西南北新金银玉桂兰松竹梅荷枫杨柳桃李星月明光华安康和平永泰福兴盛"
STEM_B = "山湖塘桥园坪岭冲湾港洲坡"


def community_names():
    for a in STEM_A:
        for b in STEM_B:
            yield f"{a}{b}"


def square(lat: float, lon: float, size: float) -> list[list[float]]:
    ring = [(lon, lat), (lon + size, lat), (lon + size, lat + size), (lon, lat + size), (lon, lat)]
    return [[round(x, 6), round(y, 6)] for x, y in ring]


def main() -> None:
    units: list[dict] = [{"code": c, "name": n, "kind": k, **({"supervisor": "ccc"} if c != "ccc" else {}),
                          **({"aliases": DEPARTMENT_ALIASES[c]} if c in DEPARTMENT_ALIASES else {})}
                         for c, n, k in DEPARTMENTS]
    features: list[dict] = []
    names = community_names()
    streets_by_district = []
    for code, name, adcode, _, streets in DISTRICTS:
        units.append({"code": code, "name": name, "kind": "district", "supervisor": "ccc"})
        mine = []
        for s, street in enumerate(streets, start=1):
            street_code = f"{code}-s{s:02d}"
            aliases = STREET_ALIASES.get(street, [])
            units.append({"code": street_code, "name": street, "kind": "street", "parent": code,
                          **({"aliases": aliases} if aliases else {})})
            mine.append((street_code, s, street))
        streets_by_district.append((code, adcode, mine))

    for (code, adcode, streets), district in zip(streets_by_district, DISTRICTS, strict=True):
        row, col = district[3]
        width = 5
        for street_code, s, street in streets:
            lat0 = ORIGIN[0] + row * DISTRICT_DEG + ((s - 1) // width) * STREET_DEG
            lon0 = ORIGIN[1] + col * DISTRICT_DEG + ((s - 1) % width) * STREET_DEG
            # The most-reported streets are denser: four communities; the others two.
            n_comm = 4 if s <= 3 else 2
            street_estates = ESTATES.get(street, [])
            for c in range(n_comm):
                comm_code = f"{street_code}-c{c + 1:02d}"
                suffix = "村" if street.endswith(("镇", "乡")) and c > 0 else "社区"
                comm = {"code": comm_code, "name": f"{next(names)}{suffix}", "kind": "community", "parent": street_code}
                mine = street_estates[c::n_comm]
                if mine:
                    comm["aliases"] = mine
                units.append(comm)
                # communities split the street into vertical strips, grids split a community 2 × (4 / n_comm)
                strip = STREET_DEG / n_comm
                rows, cols = 2, max(1, 4 // n_comm)
                for g in range(rows * cols):
                    g_lat = lat0 + (g // cols) * (STREET_DEG / rows)
                    g_lon = lon0 + c * strip + (g % cols) * (strip / cols)
                    ring = [[g_lon, g_lat], [g_lon + strip / cols, g_lat], [g_lon + strip / cols, g_lat + STREET_DEG / rows],
                            [g_lon, g_lat + STREET_DEG / rows], [g_lon, g_lat]]
                    features.append({
                        "type": "Feature",
                        "properties": {"code": f"{adcode}{s:03d}{c + 1:03d}{g + 1:03d}", "community": comm_code},
                        "geometry": {"type": "Polygon", "coordinates": [[[round(x, 6), round(y, 6)] for x, y in ring]]},
                    })

    OUT.mkdir(parents=True, exist_ok=True)
    header = ("# The sample city's unit registry, generated by scripts/make_sample_city.py (edit that, not this).\n"
              "# Districts and streets are those the real citizen messages name; communities are synthetic.\n")
    body = yaml.safe_dump({"city": "A市", "version": "A市-registry-2026.1", "units": units},
                          allow_unicode=True, sort_keys=False, width=200, default_flow_style=None)
    (OUT / "units.yaml").write_text(header + body, encoding="utf-8")
    (OUT / "grids.geojson").write_text(json.dumps({"type": "FeatureCollection", "features": features},
                                                  ensure_ascii=False, separators=(",", ":")) + "\n", encoding="utf-8")
    kinds = collections.Counter(u["kind"] for u in units)
    print(dict(kinds), "grids:", len(features))


if __name__ == "__main__":
    main()
