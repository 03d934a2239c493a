"""Annotation: roles, topic and language on every conversation.

- Roles: loaders already label each turn; here we check them, and label a conversation whose
  source had no roles at all (``role=None``) as alternating user/assistant.
- Topic: the source's label when it has one (chatterbot categories, the CSV ``topic`` column);
  otherwise the keyword classifier below. Its label set (``TOPICS``) is the customer-service
  set of the tutorial's §6.1 scenario, plus ``other``.
- Language: detected from script (``language.detect_language``); cleaning already set it,
  annotation fills it in for records that skipped cleaning.

The keyword classifier counts keyword hits per topic (English keywords match whole words,
case-insensitively; Chinese keywords match as substrings) and picks the topic with the most
hits (a few generic words such as "order" count a third); ties go to the earlier topic in ``TOPICS``; no hit -> ``other``.
"""
from __future__ import annotations

import re

from .language import detect_language
from .records import ROLES, Conversation, Document
from .report import Report

TOPICS = ("orders", "shipping", "returns_refunds", "account", "payment", "product", "complaint",
          "small_talk", "other")

TOPIC_KEYWORDS: dict[str, tuple[str, ...]] = {
    "orders": ("order", "orders", "ordered", "cancel", "cancelled", "purchase", "checkout", "cart",
               "quantity", "packed", "processing", "confirmed", "order confirmation", "updated",
               "订单", "下单", "取消", "购买", "购物车", "数量", "打包", "处理中", "已确认", "备货", "修改", "已更新"),
    "shipping": ("shipping", "ship", "ships", "shipped", "delivery", "deliver", "delivered", "package",
                 "parcel", "tracking", "track", "courier", "address", "warehouse",
                 "物流", "快递", "发货", "配送", "送达", "包裹", "单号", "地址", "到货", "派送", "运费"),
    "returns_refunds": ("return", "returns", "returned", "returning", "refund", "refunds", "exchange",
                        "money back", "send back", "return label",
                        "退货", "退款", "换货", "退钱", "退回", "寄回", "退"),
    "account": ("account", "password", "login", "log in", "sign in", "email", "username", "profile",
                "账户", "账号", "密码", "登录", "注册", "邮箱", "注销"),
    "payment": ("payment", "payments", "pay", "paid", "card", "charged", "charge", "invoice", "receipt",
                "coupon", "paypal", "declined", "bank",
                "支付", "付款", "扣款", "扣了", "银行卡", "信用卡", "发票", "扣费", "银行", "支付宝", "微信支付"),
    "product": ("size", "color", "colors", "colour", "battery", "warranty", "stock", "specs", "compatible",
                "material", "feature", "discount", "sale",
                "尺寸", "尺码", "颜色", "电池", "保修", "库存", "参数", "兼容", "材质", "功能", "缺货", "补货", "优惠", "打九折"),
    "complaint": ("complaint", "complain", "terrible", "angry", "unacceptable", "worst", "disappointed",
                  "rude", "manager", "upset", "apologize", "damaged", "broken", "escalated", "feedback",
                  "投诉", "差评", "生气", "失望", "太差", "不满意", "态度", "损坏", "坏", "抱歉", "反馈"),
    "small_talk": ("hello", "hi", "hey", "thanks", "thank you", "how are you", "good morning", "good day",
                   "bye", "goodbye", "welcome", "weather", "joke", "assistant", "robot", "nice day",
                   "你好", "您好", "谢谢", "早上好", "再见", "拜拜", "天气", "笑话", "在吗", "客服",
                   "不客气", "愉快", "机器人", "名字"),
}
# Words that almost every customer-service message contains ("order 12345") say little about
# the topic: they count a third of a hit.
WEAK_KEYWORDS = {"order", "orders", "订单", "退", "坏", "thanks", "谢谢"}

_EN_PATTERNS = {
    topic: re.compile(r"\b(" + "|".join(re.escape(k) for k in sorted(kws, key=len, reverse=True) if k.isascii()) + r")\b", re.I)
    for topic, kws in TOPIC_KEYWORDS.items()
}
_ZH_KEYWORDS = {topic: [k for k in kws if not k.isascii()] for topic, kws in TOPIC_KEYWORDS.items()}


def _weight(k: str) -> float:
    return 1 / 3 if k.lower() in WEAK_KEYWORDS else 1.0


def classify_topic(text: str) -> str:
    best, best_hits = "other", 0
    for topic in TOPICS[:-1]:
        hits = sum(_weight(k) for k in _EN_PATTERNS[topic].findall(text))
        hits += sum(_weight(k) * text.count(k) for k in _ZH_KEYWORDS[topic])
        if hits > best_hits:
            best, best_hits = topic, hits
    return best


def mentions_topic(text: str, topic: str) -> bool:
    """Does ``text`` contain a (non-generic) keyword of ``topic``? A looser on-topic test than
    ``classify_topic``: a shipping answer may also talk about the order."""
    if topic not in TOPIC_KEYWORDS:
        return False
    if any(_weight(k) == 1.0 for k in _EN_PATTERNS[topic].findall(text)):
        return True
    return any(k in text for k in _ZH_KEYWORDS[topic] if _weight(k) == 1.0)


def annotate(rec, report: Report):
    """Fill in roles, topic and language in place; returns the record."""
    if isinstance(rec, Document):
        if not rec.language:
            rec.language = detect_language(rec.text)
        report.keep("annotate")
        return rec
    conv: Conversation = rec
    if any(m.role is None for m in conv.messages):
        for i, m in enumerate(conv.messages):
            m.role = "user" if i % 2 == 0 else "assistant"
        report.modify("annotate", "roles inferred (alternating)")
    bad = [m.role for m in conv.messages if m.role not in ROLES]
    if bad:
        # loaders only produce known roles; a record built in code might not
        report.drop("annotate", f"unknown role {bad[0]!r}", example=conv.source)
        return None
    if conv.topic:
        report.modify("annotate", "topic from source")
    else:
        conv.topic = classify_topic(conv.text())
        report.modify("annotate", "topic from keywords")
    report.tally("topics", conv.topic)
    if not conv.language:
        conv.language = detect_language(conv.text())
    report.keep("annotate")
    return conv
