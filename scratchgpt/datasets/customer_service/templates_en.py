"""English templates for the customer-service generator (see generate.py).

Each intent: (topic, user templates, reply templates). ``{order_id}``, ``{product}``,
``{amount}``, ``{email}`` are slots: every reply template of an intent repeats every slot its
user templates mention, so "the reply echoes the slot values" holds by construction.
"""

INTENTS = {
    # -- orders
    "order_status": ("orders", [
        "Where is my order {order_id}?",
        "Can you check the status of order {order_id}?",
        "I placed order {order_id} last week. What is happening with it?",
        "What's the status of my order {order_id} for the {product}?",
        "Could you look up order {order_id} for me?",
    ], [
        "Order {order_id} has been packed and will ship within 24 hours.",
        "I checked order {order_id}: it is confirmed and being prepared for shipping.",
        "Your order {order_id} is processing now. You will get an email when it ships.",
    ]),
    "cancel_order": ("orders", [
        "I want to cancel order {order_id}.",
        "Please cancel my order {order_id}, I ordered the wrong {product}.",
        "Can I still cancel order {order_id}?",
        "How do I cancel order {order_id}?",
    ], [
        "Done: order {order_id} is cancelled and you will not be charged.",
        "Order {order_id} has not shipped yet, so I cancelled it for you.",
        "I have cancelled order {order_id}. The cancellation email is on its way.",
    ]),
    "change_order": ("orders", [
        "Can I add one more {product} to order {order_id}?",
        "I need to change the quantity in order {order_id}.",
        "Is it possible to change the color of the {product} in order {order_id}?",
    ], [
        "Order {order_id} has not shipped yet, so I updated it. The change is saved.",
        "I updated order {order_id} for you; the new total is shown in your account.",
        "Sure, order {order_id} is changed. You will receive a new order confirmation.",
    ]),
    # -- shipping
    "delivery_time": ("shipping", [
        "When will my {product} arrive?",
        "How long does delivery take for order {order_id}?",
        "My package for order {order_id} has not arrived yet.",
        "When is order {order_id} going to be delivered?",
    ], [
        "Order {order_id} is with the courier and should be delivered in 2-3 business days.",
        "The package for order {order_id} shipped yesterday; delivery takes about 3 days.",
        "Tracking shows order {order_id} is out for delivery today.",
        "Your {product} has shipped, and delivery should take 2-3 business days.",
    ]),
    "change_address": ("shipping", [
        "I need to change the shipping address for order {order_id}.",
        "Can you send order {order_id} to a different address?",
        "I moved. Please update the delivery address on order {order_id}.",
    ], [
        "I can change the shipping address for order {order_id} because it has not shipped yet. Please send the new address.",
        "Sure. Reply with the new address and I will update the delivery for order {order_id}.",
        "Order {order_id} has not left the warehouse, so the address can still be changed. What is the new address?",
    ]),
    "tracking": ("shipping", [
        "Can I get the tracking number for order {order_id}?",
        "How do I track my package for order {order_id}?",
        "Where can I see the tracking for my {product}?",
    ], [
        "The tracking link for order {order_id} is in your shipping confirmation email.",
        "You can track the package for order {order_id} under My Orders on our website.",
        "I just emailed you the tracking number for order {order_id}.",
        "The tracking link for your {product} is in the shipping confirmation email.",
    ]),
    # -- returns / refunds
    "return_item": ("returns_refunds", [
        "I want to return the {product} from order {order_id}.",
        "How do I return my {product}?",
        "The {product} does not fit. Can I return it?",
        "Can I send back the {product} I got in order {order_id}?",
    ], [
        "You can return the {product} within 30 days. I have emailed you a free return label.",
        "Sure, the return for the {product} is started. Please pack it and use the return label we sent.",
        "No problem. Send the {product} back within 30 days and the refund goes to your original payment.",
    ]),
    "refund_status": ("returns_refunds", [
        "Where is my refund for order {order_id}?",
        "I returned order {order_id} two weeks ago and have not got my refund.",
        "When will I get my money back for order {order_id}?",
    ], [
        "The refund for order {order_id} was issued today and takes 3-5 business days to appear.",
        "We received the return for order {order_id}; your refund is being processed now.",
        "I checked order {order_id}: the refund is approved and will reach your card within 5 days.",
    ]),
    "exchange": ("returns_refunds", [
        "Can I exchange the {product} for a different size?",
        "I'd like to exchange the {product} from order {order_id}.",
        "The {product} is the wrong color. Can I swap it?",
    ], [
        "Yes, you can exchange the {product}. I have started the exchange and emailed the return label.",
        "Sure, send the {product} back for an exchange and we will ship the replacement as soon as it arrives.",
        "The exchange for the {product} is set up. Please return the old one within 30 days.",
    ]),
    # -- account
    "reset_password": ("account", [
        "I forgot my password.",
        "How do I reset my password?",
        "I can't log in to my account, I think my password is wrong.",
        "Please help me reset the password for {email}.",
    ], [
        "I sent a password reset link to the email on your account. It is valid for 30 minutes.",
        "Click 'Forgot password' on the login page and we will email you a reset link.",
        "No problem. Use the reset link we just sent to your account email to choose a new password.",
        "I sent a password reset link to {email}. It is valid for 30 minutes.",
    ]),
    "change_email": ("account", [
        "Please change my account email to {email}.",
        "I want to update the email on my account to {email}.",
        "Can you switch my login email to {email}?",
    ], [
        "Your account email is now {email}. Please confirm it with the link we sent there.",
        "Done. I changed your account email to {email}; a confirmation message is on its way.",
        "I updated the email on your account to {email}. You can log in with it right away.",
    ]),
    "delete_account": ("account", [
        "How do I delete my account?",
        "Please close my account.",
        "I want to remove my account and all my data.",
    ], [
        "I can close your account. Please confirm the request from the email we sent you.",
        "You can delete your account under Settings > Privacy. Your data is removed within 30 days.",
        "Your account deletion request is recorded. Confirm it by email and it will be closed.",
    ]),
    # -- payment
    "double_charge": ("payment", [
        "I was charged {amount} twice for order {order_id}.",
        "Why did you charge my card {amount} two times for order {order_id}?",
        "There are two payments of {amount} for order {order_id}.",
    ], [
        "I see the duplicate payment of {amount} for order {order_id}. The extra charge will be refunded in 3-5 days.",
        "Sorry about that. The second charge of {amount} on order {order_id} is reversed and will return to your card.",
        "You are right, order {order_id} was charged {amount} twice. I have refunded the duplicate payment.",
    ]),
    "payment_failed": ("payment", [
        "My payment keeps failing for order {order_id}.",
        "Why was my card declined for order {order_id}?",
        "I can't pay for my {product}, the payment does not go through.",
    ], [
        "The payment for order {order_id} was declined by the bank. Please try another card or PayPal.",
        "Please check your card details and try again; order {order_id} is saved for 24 hours.",
        "Payment failures usually come from the bank. You can also pay for order {order_id} with PayPal.",
        "The payment for the {product} was declined by the bank. Please try another card or PayPal.",
    ]),
    "invoice": ("payment", [
        "Can I get an invoice for order {order_id}?",
        "I need a receipt for order {order_id}.",
        "Please send me the invoice for my {product}.",
    ], [
        "I emailed you the invoice for order {order_id}. You can also download it under My Orders.",
        "The invoice for order {order_id} is on its way to your email.",
        "You can download the invoice for order {order_id} from your account page.",
        "The invoice for the {product} is ready to download under My Orders, with the payment details.",
    ]),
    # -- product questions
    "product_stock": ("product", [
        "Is the {product} in stock?",
        "Do you have the {product} available?",
        "When will the {product} be back in stock?",
    ], [
        "Yes, the {product} is in stock and ships within 24 hours.",
        "The {product} is out of stock right now; new stock arrives next week.",
        "We have the {product} in stock in most colors.",
    ]),
    "product_warranty": ("product", [
        "What is the warranty on the {product}?",
        "Does the {product} come with a warranty?",
        "How long is the {product} covered by warranty?",
    ], [
        "The {product} has a one-year warranty that covers manufacturing defects.",
        "Yes, the {product} comes with a 2-year warranty.",
        "The {product} is covered by a 12-month warranty from the delivery date.",
    ]),
    "product_specs": ("product", [
        "What size is the {product}?",
        "How long does the battery of the {product} last?",
        "Is the {product} compatible with my phone?",
        "What colors does the {product} come in?",
    ], [
        "The {product} details, including size, battery and colors, are on the product page under Specs.",
        "The {product} battery lasts about 10 hours, and it works with iPhone and Android.",
        "The {product} comes in black, white and blue, and the size chart is on its product page.",
    ]),
    # -- complaints
    "damaged_item": ("complaint", [
        "The {product} I received in order {order_id} is broken!",
        "My {product} arrived damaged. This is unacceptable.",
        "Order {order_id} came with a cracked {product}. I am very disappointed.",
    ], [
        "I am sorry the {product} arrived damaged. I have sent a replacement at no cost and filed a complaint with the courier.",
        "That should not happen. A new {product} is on its way, and you do not need to return the damaged one.",
        "Sorry about the damaged {product}. I have logged your complaint and you can choose a refund or a replacement.",
    ]),
    "bad_service": ("complaint", [
        "Your support agent was rude to me.",
        "I have waited a week for an answer. This is terrible service.",
        "I want to make a complaint about order {order_id}.",
    ], [
        "I am sorry about your experience. I have recorded your complaint and a manager will contact you within 24 hours.",
        "You are right to be upset. Your complaint is logged and a manager will follow up personally.",
        "I apologize. I have filed your complaint and we will review it today.",
        "I have recorded your complaint about order {order_id}, and a manager will contact you within 24 hours.",
    ]),
    "late_delivery_complaint": ("complaint", [
        "Order {order_id} is two weeks late. This is the worst service ever.",
        "I am angry that my {product} still has not arrived.",
        "Why is order {order_id} so late? I am very disappointed.",
    ], [
        "I am sorry order {order_id} is so late. I have filed a complaint with the courier and refunded your shipping fee.",
        "I understand you are upset. Order {order_id} is delayed at the courier; I logged a complaint and will update you tomorrow.",
        "Sorry for the delay with order {order_id}. I have escalated your complaint and added a coupon to your account.",
        "I am sorry your {product} is late. I have filed a complaint with the courier and will update you tomorrow.",
    ]),
    # -- small talk
    "greeting": ("small_talk", [
        "Hi", "Hello", "Hi there!", "Hello, is anyone there?", "Good morning", "Hey",
    ], [
        "Hello! How can I help you today?",
        "Hi! What can I do for you?",
        "Good day! How may I help you?",
    ]),
    "thanks": ("small_talk", [
        "Thanks!", "Thank you so much.", "Great, thanks for your help.", "OK, thank you.", "Perfect, thanks.",
    ], [
        "You're welcome! Have a nice day.",
        "Happy to help! Anything else? Have a nice day.",
        "My pleasure. Thank you for shopping with us!",
    ]),
    "how_are_you": ("small_talk", [
        "How are you today?", "How's it going?", "Are you a robot?", "What's your name?",
    ], [
        "I am the store's virtual assistant, and I am doing well, thanks! How can I help you?",
        "I'm a virtual assistant, always happy to chat. What can I help you with?",
        "Doing great, thanks for asking! I am the virtual assistant for orders, shipping and returns.",
    ]),
    "goodbye": ("small_talk", [
        "Bye!", "That's all, goodbye.", "See you.",
    ], [
        "Goodbye! Thanks for contacting us.",
        "Bye! Have a great day.",
        "Thanks for chatting. Goodbye!",
    ]),
}

# follow-ups asked after a main request, by topic: (intent name, user, replies)
FOLLOWUPS = {
    "orders": ("order_eta", ["When will it arrive?", "How long until it ships?"],
               ["Order {order_id} is confirmed; it usually arrives 3-5 days after it ships.",
                "Order {order_id} is processing; once it ships, delivery takes about 3 days."]),
    "shipping": ("shipping_fee", ["Is shipping free?", "Do I pay for delivery?"],
                 ["Shipping for order {order_id} is free.",
                  "Delivery for order {order_id} is free because the total is over $50."]),
    "returns_refunds": ("return_cost", ["Do I have to pay for the return?", "Is the return free?"],
                        ["The return of the {product} is free; use the prepaid label.",
                         "No, returning the {product} costs nothing."]),
    "payment": ("payment_methods", ["Which payment methods do you accept?"],
                ["We accept Visa, Mastercard and PayPal for order {order_id}.",
                 "You can pay for order {order_id} with a credit card or PayPal."]),
    "product": ("product_more", ["Can I buy it with a discount?", "Is there a cheaper version?"],
                ["There is a 10% discount on the {product} this week.",
                 "The {product} is on sale this week with 10% off."]),
    "complaint": ("complaint_followup", ["Will this happen again?", "What are you doing about it?"],
                  ["We have shared your feedback with the team so it does not happen again.",
                   "Your complaint is with our quality team, and we will email you the result."]),
}

PRODUCTS = [
    "Bluetooth Speaker", "wireless earbuds", "USB-C charger", "smart watch", "laptop stand", "coffee maker",
    "running shoes", "rain jacket", "desk lamp", "yoga mat", "phone case", "gaming mouse",
    "mechanical keyboard", "water bottle", "backpack", "electric kettle", "air fryer", "hiking boots",
    "winter coat", "power bank", "HDMI cable", "webcam", "noise-cancelling headphones", "robot vacuum",
    "blender", "sunglasses", "wool scarf", "e-reader", "fitness tracker", "portable fan",
]
EMAIL_USERS = ["anna.lee", "mark88", "j.smith", "lucy.w", "tom_k", "sara.b", "li.ming", "chen.yu", "omar.h",
               "nina.p", "dave2024", "kate.m"]
CURRENCY_FMT = "${:.2f}"
GREETING_PREFIXES = ["", "", "", "Hi, ", "Hello, ", "Hi there, ", "Excuse me, ", "Good morning, "]
USER_SUFFIXES = ["", "", "", " Thanks.", " Please help.", " Thank you!", " Can you help?"]
REPLY_PREFIXES = ["", "", "Sure! ", "Thanks for reaching out. ", "Of course. ", "Let me help. "]
