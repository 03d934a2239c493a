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
hits; ties go to the earlier topic in ``TOPICS``; no hit -> ``other``.
"""
from __future__ import annotations

import re

from .language import detect_language
from .records import ROLES, Conversation, Document
from .report import Report

TOPICS = ("orders", "shipping", "returns_refunds", "account", "payment", "product", "complaint",
          "small_talk", "other")

TOPIC_KEYWORDS: dict[str, tuple[str, ...]] = {
    "orders": ("order", "orders", "ordered", "cancel", "purchase", "checkout", "cart",
               "订单", "下单", "取消", "购买", "购物车"),
    "shipping": ("shipping", "ship", "shipped", "delivery", "deliver", "delivered", "package",
                 "parcel", "tracking", "courier", "arrive", "address",
                 "物流", "快递", "发货", "配送", "送达", "包裹", "运单", "地址", "到货"),
    "returns_refunds": ("return", "returns", "refund", "refunds", "exchange", "money back",
                        "退货", "退款", "换货", "退钱", "退回"),
    "account": ("account", "password", "login", "log in", "sign in", "email", "username", "profile",
                "账户", "账号", "密码", "登录", "注册", "邮箱", "手机号"),
    "payment": ("payment", "pay", "paid", "card", "charged", "charge", "invoice", "coupon", "paypal",
                "支付", "付款", "扣款", "银行卡", "信用卡", "发票", "优惠券", "扣费"),
    "product": ("size", "color", "colour", "battery", "warranty", "stock", "specs", "compatible",
                "material", "feature", "尺寸", "颜色", "电池", "保修", "库存", "参数", "兼容", "材质", "功能"),
    "complaint": ("complaint", "complain", "terrible", "angry", "unacceptable", "worst", "disappointed",
                  "rude", "manager", "投诉", "差评", "生气", "失望", "太差", "不满意", "态度"),
    "small_talk": ("hello", "hi", "hey", "thanks", "thank you", "how are you", "good morning", "bye",
                   "weather", "joke", "你好", "谢谢", "早上好", "再见", "天气", "笑话", "在吗"),
}

_EN_PATTERNS = {
    topic: re.compile(r"\b(" + "|".join(re.escape(k) for k in kws if k.isascii()) + r")\b", re.I)
    for topic, kws in TOPIC_KEYWORDS.items()
}
_ZH_KEYWORDS = {topic: [k for k in kws if not k.isascii()] for topic, kws in TOPIC_KEYWORDS.items()}


def classify_topic(text: str) -> str:
    best, best_hits = "other", 0
    for topic in TOPICS[:-1]:
        hits = len(_EN_PATTERNS[topic].findall(text)) + sum(text.count(k) for k in _ZH_KEYWORDS[topic])
        if hits > best_hits:
            best, best_hits = topic, hits
    return best


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
