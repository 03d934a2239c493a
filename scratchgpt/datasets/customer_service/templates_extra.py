"""Extra wordings for the *varied* training conversations (``variety.py``), written separately
from ``templates_en.py`` / ``templates_zh.py`` and from the evaluation sets.

The bundled train/test splits use only the original templates (so the test split stays what it
was); these add other ways to ask for the same intent — other verbs, other sentence orders, the
slot at the start, in the middle or at the end, short and casual messages — so a model has to
find the request and the values in the message instead of recognising a whole template.
Replies still come from the original reply templates of the intent, plus a few new ones (under
``EXTRA_REPLIES``) for slot combinations the originals never answer (an amount without an order
number, an e-mail on a request that had none).

Same placeholder convention as the original templates: ``{order_id}``, ``{product}``, ``{amount}``,
``{email}``; ``{order}`` in a user template is a reference to the order *without* its number
("my order", "订单"); ``variety.py`` then attaches the number elsewhere in the message.
"""

EXTRA_USERS = {
    "en": {
        "order_status": [
            "Any update on {order_id}?",
            "{order_id} - has this one been processed?",
            "Is {order} confirmed? It's {order_id}.",
            "Has {order} been packed yet? Number {order_id}",
            "status of {order_id}",
            "Just checking in on {order_id}. Is everything okay with it?",
            "I still have no confirmation for {order} {order_id}. What's going on?",
            "Could you tell me if {order_id} has been processed?",
        ],
        "cancel_order": [
            "{order_id}: please cancel it.",
            "Cancel {order_id} please, I found it cheaper elsewhere.",
            "I don't want {order} anymore, cancel {order_id}.",
            "Stop {order} {order_id}, I no longer need it.",
            "Is it too late to cancel {order_id}?",
            "I would like {order_id} cancelled before it ships.",
        ],
        "change_order": [
            "{order_id}: I want to change the quantity.",
            "Please update {order} {order_id}, I need two of them.",
            "Can you modify {order_id}? I picked the wrong color.",
            "I need to edit {order_id} before it ships.",
        ],
        "delivery_time": [
            "When does {order_id} arrive?",
            "{order_id} still not delivered. How many more days?",
            "Expected delivery date for {order_id}?",
            "How soon will I receive {order} {order_id}?",
            "My parcel {order_id} is not here yet, when will it come?",
            "Still waiting for my {product}. When will it be delivered?",
        ],
        "change_address": [
            "{order_id} needs to go to my new address.",
            "Wrong address on {order_id}, can I fix it?",
            "Please ship {order} {order_id} to my office instead.",
            "Can the delivery address of {order_id} still be updated?",
        ],
        "tracking": [
            "Tracking number for {order_id}?",
            "{order_id} - where can I follow the package?",
            "I'd like to track {order} {order_id}.",
            "Can you send me the tracking link for {order_id}?",
            "Send the tracking info for {order_id} to {email} please.",
        ],
        "return_item": [
            "I'd like to send the {product} back.",
            "Return the {product} from {order_id}, please.",
            "The {product} ({order_id}) is not what I expected. How can I return it?",
            "{order_id}: I want to return the {product}.",
            "Can the {product} go back? I don't like it.",
        ],
        "refund_status": [
            "Refund for {order_id}?",
            "{order_id} - I still haven't seen my money.",
            "Has the refund for {order} {order_id} been sent?",
            "My refund of {amount} for {order_id} is missing.",
            "When is my money for {order_id} coming back?",
            "I am waiting for a refund of {amount}. When will I get it?",
            "{amount} refund - still nothing on my card.",
        ],
        "exchange": [
            "Swap the {product} for another size please.",
            "{order_id}: can the {product} be exchanged?",
            "I need a different color of the {product}. Exchange possible?",
            "Could I trade the {product} for a bigger one?",
        ],
        "reset_password": [
            "Locked out of my account, my email is {email}.",
            "{email} - I need a new password.",
            "password reset please",
            "The password for {email} doesn't work anymore.",
            "Help, I can't sign in to {email}.",
        ],
        "change_email": [
            "New email for my account: {email}",
            "Update my email address to {email} please.",
            "{email} is my new address, please use it for my account.",
            "Could my account use {email} from now on?",
        ],
        "delete_account": [
            "Close my account please.",
            "I'd like my account and data deleted.",
            "Please delete the account registered to {email}.",
            "Remove my account, the email is {email}.",
        ],
        "double_charge": [
            "Two charges of {amount} for {order_id}? Please fix this.",
            "{amount} was taken twice for {order_id}.",
            "I paid {amount} for {order_id} but my bank shows it twice.",
            "I see {amount} twice on my card.",
            "You billed me {amount} two times!",
        ],
        "payment_failed": [
            "Payment for {order_id} won't go through.",
            "{order_id}: the card payment failed again.",
            "My card got declined when paying {amount}.",
            "Why can't I pay {amount}? It keeps failing.",
            "Checkout fails for {order_id}, what should I do?",
            "{amount} for {order_id} didn't go through.",
        ],
        "invoice": [
            "Invoice for {order_id} please.",
            "{order_id} - I need the receipt for my company.",
            "Could you email me the invoice of {order} {order_id}?",
            "Where do I download the invoice for {order_id}?",
            "Please send the invoice for {order_id} to {email}.",
            "{email} - can I get the receipt of {order} {order_id} there?",
        ],
        "product_stock": [
            "Do you still sell the {product}?",
            "Is the {product} available right now?",
            "{product} in stock?",
            "Can I order the {product} today or is it sold out?",
        ],
        "product_warranty": [
            "Is there a guarantee on the {product}?",
            "{product} warranty?",
            "If the {product} breaks, is it covered?",
            "How many years of warranty does the {product} have?",
        ],
        "product_specs": [
            "Tell me more about the {product}: size and battery?",
            "{product} - which colors are there?",
            "Does the {product} work with Android?",
            "How big is the {product}?",
        ],
        "damaged_item": [
            "The {product} came broken.",
            "{order_id}: the {product} is damaged.",
            "My {product} was smashed when it arrived. Order {order_id}.",
            "Received a broken {product}, not happy at all.",
        ],
        "bad_service": [
            "Nobody from support answers me. I want to file a complaint.",
            "Your service is awful, I want to complain.",
            "I have a complaint about {order_id}.",
            "Very unhappy with how my case about {order_id} was handled.",
        ],
        "late_delivery_complaint": [
            "{order_id} is very late and I am upset.",
            "Still no {product}! This delay is ridiculous.",
            "Ten days late already: {order_id}. Unacceptable.",
            "I'm really unhappy, {order} {order_id} should have been here last week.",
        ],
        "greeting": ["hello?", "hey there", "hi, anyone here?", "Good evening"],
        "thanks": ["thx", "thanks a lot", "great, thank you!", "ok cool, thanks"],
        "how_are_you": ["how are you?", "are you a real person?", "who am I talking to?"],
        "goodbye": ["ok bye", "that's it, bye", "goodbye and thanks"],
    },
    "zh": {
        "order_status": [
            "{order_id}现在到哪一步了？",
            "{order_id}这个单处理了吗？",
            "查一下{order_id}。",
            "我的订单确认了吗？单号{order_id}。",
            "{order}{order_id}有进展吗？",
            "想问问{order_id}是什么状态。",
        ],
        "cancel_order": [
            "{order_id}不要了，帮我取消。",
            "取消{order_id}，谢谢。",
            "我不想要了，{order}{order_id}能取消吗？",
            "请取消单号{order_id}的订单。",
        ],
        "change_order": [
            "{order_id}想改一下数量。",
            "帮我改一下{order_id}，颜色选错了。",
            "{order}{order_id}发货前还能修改吗？",
        ],
        "delivery_time": [
            "{order_id}几天能到？",
            "{order_id}怎么还没送到？",
            "我的包裹{order_id}什么时候到？",
            "{product}还没收到，什么时候能送到？",
        ],
        "change_address": [
            "{order_id}的地址写错了，能改吗？",
            "{order_id}改寄到公司地址。",
            "我换地址了，{order}{order_id}寄到新地址吧。",
        ],
        "tracking": [
            "{order_id}的物流信息在哪看？",
            "给我{order_id}的快递单号。",
            "{order}{order_id}怎么跟踪？",
            "{order_id}的快递单号发到{email}吧。",
        ],
        "return_item": [
            "{product}不喜欢，想退。",
            "{order_id}的{product}要退货。",
            "{product}能退吗？订单是{order_id}。",
            "退货：{product}。",
        ],
        "refund_status": [
            "{order_id}的退款还没到。",
            "退款呢？{order_id}。",
            "{order}{order_id}的钱退了吗？",
            "{amount}的退款什么时候到账？",
            "{order_id}退款{amount}还没收到。",
        ],
        "exchange": [
            "{product}想换一个颜色。",
            "{order_id}里的{product}能换货吗？",
            "{product}换大一号可以吗？",
        ],
        "reset_password": [
            "登不上了，邮箱{email}。",
            "{email}的密码忘了。",
            "重置密码。",
            "账户{email}的密码不对了，怎么办？",
        ],
        "change_email": [
            "邮箱改成{email}。",
            "{email}是我的新邮箱，请更新账户。",
            "账户邮箱帮我换成{email}吧。",
        ],
        "delete_account": [
            "注销我的账户。",
            "把{email}这个账户删掉。",
            "我要注销账号，邮箱是{email}。",
        ],
        "double_charge": [
            "{order_id}扣了两次{amount}。",
            "重复扣款{amount}，订单{order_id}。",
            "我被扣了两次{amount}。",
            "{amount}扣了两遍，怎么回事？",
        ],
        "payment_failed": [
            "{order_id}付不了款。",
            "付{amount}的时候失败了。",
            "为什么{amount}付款不成功？",
            "{order_id}支付一直不成功。",
            "{order_id}付{amount}没成功。",
        ],
        "invoice": [
            "{order_id}要开发票。",
            "发票：{order_id}。",
            "{order}{order_id}的发票在哪下载？",
            "{order_id}的发票发到{email}。",
        ],
        "product_stock": [
            "{product}还有吗？",
            "现在能买{product}吗？",
            "{product}卖完了吗？",
        ],
        "product_warranty": [
            "{product}保修吗？",
            "{product}坏了能保修吗？",
            "{product}保几年？",
        ],
        "product_specs": [
            "{product}多大？",
            "{product}有几种颜色？",
            "{product}支持安卓吗？",
        ],
        "damaged_item": [
            "{product}收到就是坏的。",
            "{order_id}的{product}摔坏了。",
            "收到的{product}坏了，订单{order_id}。",
        ],
        "bad_service": [
            "客服一直不回复，我要投诉。",
            "服务太差，我要投诉。",
            "{order_id}我要投诉。",
        ],
        "late_delivery_complaint": [
            "{order_id}迟迟不到，很生气。",
            "{product}一直不到，太慢了。",
            "{order}{order_id}晚了十天了，太差了。",
        ],
        "greeting": ["哈喽", "有人在吗", "晚上好"],
        "thanks": ["谢啦", "多谢", "好的谢谢"],
        "how_are_you": ["你好吗", "你是真人吗？", "你是谁？"],
        "goodbye": ["好的拜拜", "就这些，再见"],
    },
}

# replies for slot combinations the original reply templates never answer: a value alone (an
# amount without an order number), or every value the user gave (order number *and* product)
EXTRA_REPLIES = {
    "en": {
        "order_status": ["Order {order_id} for the {product} is confirmed and will ship within 24 hours."],
        "cancel_order": ["Done: order {order_id} with the {product} is cancelled and you will not be charged."],
        "change_order": ["Order {order_id} has not shipped yet, so I updated the {product} in it."],
        "return_item": ["You can return the {product} from order {order_id} within 30 days. I have emailed you a return label."],
        "exchange": ["Sure, the {product} from order {order_id} can be exchanged. I have emailed you the return label."],
        "damaged_item": ["I am sorry the {product} in order {order_id} arrived damaged. A replacement is on its way and your complaint is logged."],
        "refund_status": ["The refund of {amount} is approved and will reach your card within 5 days.",
                          "The refund of {amount} for order {order_id} is approved and will reach your card within 5 days."],
        "double_charge": ["I see the duplicate payment of {amount}. The extra charge will be refunded in 3-5 days."],
        "payment_failed": ["The payment of {amount} was declined by the bank. Please try another card or PayPal.",
                           "The payment of {amount} for order {order_id} was declined by the bank. Please try another card or PayPal."],
        "delete_account": ["I can close the account for {email}. Please confirm the request from the email we sent you."],
        "invoice": ["I emailed the invoice for order {order_id} to {email}."],
        "tracking": ["I sent the tracking link for order {order_id} to {email}."],
    },
    "zh": {
        "order_status": ["订单{order_id}的{product}已确认，24小时内发货。"],
        "cancel_order": ["好的，订单{order_id}的{product}已取消，不会扣款。"],
        "change_order": ["订单{order_id}还没发货，里面的{product}已经帮您修改好了。"],
        "return_item": ["订单{order_id}的{product}可以在30天内退货，退货标签已发到您的邮箱。"],
        "exchange": ["可以换货，订单{order_id}的{product}请寄回，我们收到后马上发出新的。"],
        "damaged_item": ["很抱歉订单{order_id}的{product}到货损坏，已为您补发，投诉也已记录。"],
        "refund_status": ["{amount}的退款已批准，5天内退回您的银行卡。",
                          "订单{order_id}的{amount}退款已批准，5天内退回您的银行卡。"],
        "double_charge": ["我看到重复扣款{amount}，多扣的钱会在3到5天内退回。"],
        "payment_failed": ["{amount}的付款被银行拒绝了，请换一张银行卡或用支付宝支付。",
                           "订单{order_id}的{amount}付款被银行拒绝了，请换一张银行卡或用支付宝支付。"],
        "delete_account": ["可以注销{email}的账户，请在我们发给您的邮件里确认。"],
        "invoice": ["订单{order_id}的发票已发送到{email}。"],
        "tracking": ["订单{order_id}的物流单号已发送到{email}。"],
    },
}

# how a message may refer to its order when the number sits elsewhere in it
ORDER_WORDS = {"en": ["my order", "the order", "order", "my purchase", "my package"],
               "zh": ["订单", "我的订单", "这个订单", "这单"]}

# ways to give an order number on its own, before or after the request ({v} = the number)
ID_FIRST = {"en": ["{v} is my order number. ", "Order number {v}. ", "Order {v}: ", "{v} - ", "Ref {v}. ",
                   "Re {v}: ", "order no {v}, "],
            "zh": ["订单号{v}，", "{v}这个订单，", "单号：{v}。", "{v}，", "订单编号{v}。"]}
ID_LAST = {"en": [" Order {v}.", " (order {v})", " The order number is {v}.", " - {v}", " It's {v}.",
                  " ref: {v}", " order number {v}"],
           "zh": ["，订单号是{v}", "（订单{v}）", "。单号{v}", " 订单编号：{v}", "，单号{v}。"]}
# how the number is written where a template says "order {order_id}"
ID_INLINE = {"en": ["order {v}", "order {v}", "order number {v}", "order no. {v}", "{v}", "order ID {v}",
                    "order #{v}"],
             "zh": ["订单{v}", "订单{v}", "订单号{v}", "单号{v}", "{v}", "订单编号{v}"]}

# irrelevant chit-chat around a request
CHITCHAT = {
    "en": ["I'm in a bit of a hurry.", "Sorry to bother you again.", "Long time customer here.",
           "Hope you're having a good day.", "This is my second message about this.", "I'm on my phone, sorry for typos.",
           "My friend recommended your shop.", "Thanks in advance!", "Please answer quickly.", "It's for a birthday.",
           "I already tried the website.", "Honestly a bit frustrated."],
    "zh": ["有点急。", "又来麻烦你们了。", "我是老客户了。", "辛苦了。", "这是我第二次问了。", "手机打字，见谅。",
           "朋友推荐的店。", "先谢谢了！", "请尽快回复。", "是送人的礼物。", "网站上没找到。", "有点着急。"],
}

# casual spellings (word -> replacements), applied to whole words, case-insensitively
ABBREVIATIONS = {"please": ["pls", "plz"], "you": ["u"], "your": ["ur", "yr"], "thanks": ["thx", "tks"],
                 "thank you": ["ty", "thank u"], "because": ["cuz", "bc"], "don't": ["dont"], "can't": ["cant"],
                 "i'm": ["im"], "what's": ["whats"], "it's": ["its"], "doesn't": ["doesnt"], "haven't": ["havent"],
                 "are": ["r"], "order": ["ordr", "oder"], "tomorrow": ["tmrw"], "message": ["msg"],
                 "information": ["info"], "to": ["2"], "for": ["4"], "account": ["acct"], "number": ["no.", "nr", "#"]}

# English words a Chinese customer may mix in (Chinese -> English), and the other way round
ZH_TO_EN = {"订单": ["order"], "退款": ["refund"], "快递": ["delivery", "express"], "物流": ["tracking"],
            "发票": ["invoice"], "账户": ["account"], "账号": ["account"], "邮箱": ["email"], "密码": ["password"],
            "退货": ["return"], "包裹": ["package", "parcel"], "取消": ["cancel"], "投诉": ["complain"],
            "地址": ["address"], "保修": ["warranty"], "有货": ["in stock"], "付款": ["payment"]}
EN_EXTRAS_ZH = {"head": ["你好，", "您好 ", "Hi 你好，", "在吗 "], "tail": [" 谢谢", " 谢谢！", "，麻烦了", " 急"]}

# open-ended product names (modifier + thing): the bundled data names 30 products per language and
# every test product occurs in training, so a model can pick a product from the list instead of
# copying it; these make the product a value to copy like the others
PRODUCT_PARTS = {
    "en": (["bamboo", "steel", "glass", "leather", "folding", "travel", "mini", "smart", "wooden", "ceramic",
            "waterproof", "cordless", "kids'", "vintage", "solar", "magnetic", "silicone", "digital", "linen", "heated"],
           ["cutting board", "lunch box", "alarm clock", "picture frame", "umbrella", "thermometer", "toothbrush",
            "tea kettle", "plant pot", "wallet", "shelf", "drone", "tripod", "doormat", "pillow", "camera bag",
            "bike light", "blanket", "scale", "jump rope", "frying pan", "hair dryer", "desk chair", "lantern"]),
    "zh": (["竹制", "不锈钢", "玻璃", "真皮", "折叠", "便携", "迷你", "智能", "实木", "陶瓷", "防水", "无线",
            "儿童", "复古", "太阳能", "磁吸", "硅胶", "数码", "亚麻", "加热"],
           ["砧板", "饭盒", "闹钟", "相框", "雨伞", "体温计", "牙刷", "茶壶", "花盆", "钱包", "置物架", "无人机",
            "三脚架", "地垫", "枕头", "相机包", "车灯", "毛毯", "体重秤", "跳绳", "平底锅", "吹风机", "办公椅", "露营灯"]),
}
