"""A small synonym table written for this project (English and Chinese), for EDA rewriting.

Each line is a group of interchangeable words in the customer-service and small-talk register
the bundled data uses. It is deliberately small: it shows the mechanism; a real system would
use WordNet / a Chinese synonym lexicon or a paraphrase model. Words that carry slot values
(order numbers, product names, amounts) are never in it.
"""
from __future__ import annotations

SYNONYM_GROUPS_EN = [
    ["hello", "hi", "hey"],
    ["thanks", "thank you", "cheers"],
    ["please", "kindly"],
    ["help", "assist", "support"],
    ["want", "would like", "wish"],
    ["need", "require"],
    ["check", "look up", "verify"],
    ["order", "purchase"],
    ["package", "parcel"],
    ["arrive", "come", "get here"],
    ["late", "delayed", "overdue"],
    ["quickly", "fast", "soon"],
    ["problem", "issue", "trouble"],
    ["broken", "damaged", "faulty"],
    ["wrong", "incorrect"],
    ["buy", "purchase", "get"],
    ["cancel", "call off"],
    ["refund", "reimbursement"],
    ["return", "send back"],
    ["money", "funds"],
    ["account", "profile"],
    ["change", "update", "modify"],
    ["question", "query"],
    ["tell", "inform"],
    ["know", "find out"],
    ["where", "whereabouts"],
    ["when", "what time"],
    ["still", "yet"],
    ["today", "this day"],
    ["big", "large"],
    ["small", "little"],
    ["good", "great", "nice"],
    ["bad", "poor", "terrible"],
    ["angry", "upset", "annoyed"],
    ["happy", "glad", "pleased"],
    ["sorry", "apologies"],
    ["item", "product"],
    ["received", "got"],
    ["send", "ship", "dispatch"],
    ["fix", "resolve", "sort out"],
]

SYNONYM_GROUPS_ZH = [
    ["你好", "您好", "嗨"],
    ["谢谢", "感谢", "多谢"],
    ["请", "麻烦"],
    ["帮忙", "帮助", "协助"],
    ["想", "想要", "希望"],
    ["需要", "要"],
    ["查", "查询", "查一下"],
    ["订单", "单子"],
    ["包裹", "快递"],
    ["到", "送到", "到达"],
    ["很慢", "太慢", "迟迟"],
    ["快点", "尽快", "赶紧"],
    ["问题", "毛病", "情况"],
    ["坏了", "损坏", "有故障"],
    ["错", "不对"],
    ["买", "购买"],
    ["取消", "撤销"],
    ["退款", "退钱"],
    ["退货", "退回"],
    ["钱", "款项"],
    ["账户", "账号"],
    ["修改", "更改", "改"],
    ["知道", "了解"],
    ["什么时候", "何时"],
    ["还", "仍然"],
    ["今天", "今日"],
    ["好", "不错"],
    ["生气", "恼火", "不满"],
    ["对不起", "抱歉", "不好意思"],
    ["商品", "产品", "东西"],
    ["收到", "拿到"],
    ["发货", "寄出"],
    ["解决", "处理"],
    ["现在", "目前"],
    ["可以", "能"],
]


def _index(groups) -> dict[str, list[str]]:
    table: dict[str, list[str]] = {}
    for group in groups:
        for w in group:
            table.setdefault(w, [])
            table[w] += [x for x in group if x != w and x not in table[w]]
    return table


SYNONYMS_EN = _index(SYNONYM_GROUPS_EN)
SYNONYMS_ZH = _index(SYNONYM_GROUPS_ZH)
# longest first, for greedy maximum matching of Chinese text
ZH_WORDS = sorted(SYNONYMS_ZH, key=len, reverse=True)
