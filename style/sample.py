"""Generate the bundled sample WhatsApp exports: a year of chats between fictional friends.

Maya Okafor (author "Maya") is the persona the sample is built around. She writes in
lowercase without full stops, laughs ("hahaha", "lmaooo"), ends messages with emoji,
stretches words ("sooo", "yesss"), uses slang (omg, tbh, ngl, idk, rn, u, ur) and sends
bursts of short messages, mostly in the evening and within seconds of the last one.
Sam, Jonas Weber and Priya write tidy, punctuated sentences, mostly in the daytime,
and answer slowly. Everyone is invented: phone numbers sit in the range Ofcom keeps
for drama (+44 7700 900xxx), addresses and links at example.com.

The bundled files in ``style/data/sample/`` are ``generate_sample()`` with its defaults;
``python -m style.sample OUTDIR`` writes them again.
"""

from __future__ import annotations

import argparse
import random
import re
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from pathlib import Path

PERSONA = "Maya"
SAM = "Sam"
JONAS = "Jonas Weber"
PRIYA = "Priya"
GROUP_NAME = "Weekend Crew"

PAIR_FILE = "WhatsApp Chat with Sam.txt"
GROUP_FILE = "_chat.txt"
DATA_DIR = Path(__file__).parent / "data" / "sample"

LRM = "\u200e"  # iOS puts it before media placeholders and system notices
NNBSP = "\u202f"  # iOS (2023+) puts it between the time and AM/PM

ANDROID_ENCRYPTION = (
    "Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them. Tap to learn more."
)
IOS_ENCRYPTION = (
    f"{LRM}Messages and calls are end-to-end encrypted. No one outside of this chat, not even "
    "WhatsApp, can read or listen to them."
)

# ---------------------------------------------------------------------------------------
# What people talk about. Templates are written once, in plain English; Maya's lines are
# restyled from them (see _maya_burst), everyone else's are tidied (see _other_message).
# Every answer fits every ask of its exchange, and every follow-up fits every answer.
# ---------------------------------------------------------------------------------------

SLOTS: dict[str, tuple[str, ...]] = {
    "day": ("Monday", "Tuesday", "Wednesday", "Thursday", "Friday", "Saturday", "Sunday"),
    "time": ("6", "half 6", "7", "half 7", "8", "9"),
    "place": (
        "the ramen place on Bridge Street",
        "Lola's",
        "the Green Lantern",
        "Café Mimosa",
        "the market hall",
        "the Copper Kettle",
        "that new place by the station",
    ),
    "food": ("ramen", "pizza", "tacos", "dumplings", "curry", "sushi", "pho", "burgers"),
    "dish": ("jollof rice", "lentil curry", "lasagne", "shakshuka", "banana bread", "stew"),
    "film": (
        "Midnight Orchard",
        "The Glass Harbour",
        "Paper Moons",
        "Nine Lives in Lisbon",
        "The Last Lighthouse",
        "Quiet Hours",
    ),
    "show": ("Harbour Street", "The Night Desk", "Salt and Stone", "Love on the Ferry"),
    "friend_f": ("Anna", "Lena", "Grace", "Zoe", "Amara"),
    "friend_m": ("Tom", "Marcus", "Ben", "Chidi", "Felix"),
    "city": ("Lisbon", "Edinburgh", "Berlin", "Amsterdam", "Porto", "Copenhagen", "Lagos"),
    "artist": ("The Lanterns", "Mira Vale", "Soft Harbour", "Juno Park", "Kite Theory"),
    "exam": ("stats exam", "portfolio review", "typography final", "research methods exam"),
    "gym": ("spin class", "leg day", "the climbing wall", "hot yoga", "a 5k run"),
    "month": ("March", "May", "June", "September", "October"),
}

PETS = {PERSONA: "Biscuit", SAM: "Pepper", JONAS: "Otto", PRIYA: "Mango"}


@dataclass(frozen=True, slots=True)
class Exchange:
    """An ask (question or news), answers that fit it, and what the asker says back."""

    asks: tuple[str, ...]
    answers: tuple[str, ...]
    follows: tuple[str, ...] = ()
    mood: str = "plain"  # which reactions fit: "plain", "happy", "sad" or "news"


TOPICS: dict[str, tuple[Exchange, ...]] = {
    "plans": (
        Exchange(
            (
                "Are you free on {day} evening?",
                "What are you up to on {day}?",
                "Do you want to do something on {day}?",
            ),
            (
                "I'm free after {time}, what did you have in mind?",
                "Nothing yet, I was planning to stay in. Why?",
                "I don't know yet, I might have a thing. Why?",
                "I have a thing until {time} but I'm free after that.",
            ),
            (
                "How about {food} at {place}?",
                "Let's get {food} at {place} then.",
                "Want to try {place}? I heard they do amazing {food}.",
            ),
        ),
        Exchange(
            (
                "Do you want to come to {friend_f}'s birthday drinks on {day}?",
                "{friend_f} is having birthday drinks on {day}, are you coming?",
            ),
            (
                "Yes, I'd love to. Where is it?",
                "I think so, I just need to check a few things first.",
                "Definitely, I still need to get her a present though.",
            ),
            ("It's at {place} from {time}.", "I'll send you the details. It starts at {time}."),
            mood="happy",
        ),
        Exchange(
            ("Are we still on for {day}?", "Is {day} still happening?"),
            (
                "Yes, {time} at {place} like we said.",
                "Yes, but can we make it a bit later? Maybe {time}?",
                "I think so, unless it rains.",
            ),
            ("Perfect, see you there.", "Okay, I'll book a table.", "Great, I can't wait."),
            mood="happy",
        ),
        Exchange(
            (
                "Do you want to come over on {day}? I'm making {dish}.",
                "Dinner at mine on {day}? I'm cooking {dish}.",
            ),
            (
                "Yes please, I'll bring dessert.",
                "That sounds amazing. What time?",
                "I'd love to. Should I bring anything?",
            ),
            ("Just bring yourself. Come at {time}.", "Maybe some drinks? Come around {time}."),
            mood="happy",
        ),
        Exchange(
            (
                "I need to cancel {day}, I'm so sorry.",
                "Would you hate me if we moved {day} to next week?",
            ),
            (
                "No worries at all, is everything okay?",
                "That's fine, we can do next week instead.",
                "Oh no, okay. Let's find another day.",
            ),
            (
                "Everything is fine, it's just been a really long week.",
                "Thank you. Work is just chaos right now.",
            ),
            mood="sad",
        ),
    ),
    "food": (
        Exchange(
            ("What are you having for dinner?", "Have you eaten yet?"),
            (
                "I'm making {dish}.",
                "Nothing yet, I'm too tired to cook. Probably {food}.",
                "I don't know yet. Maybe {food}?",
                "I just had {food} from {place}.",
            ),
            ("That sounds so good.", "Now I want {food} too.", "Enjoy!"),
            mood="happy",
        ),
        Exchange(
            ("Have you tried {place} yet?", "Is {place} any good?"),
            (
                "Yes, you have to get the {food} there.",
                "Not yet, but {friend_f} says it's really good.",
                "I went last week. It was okay but a bit expensive.",
            ),
            ("We should go together.", "Okay, adding it to the list.", "Good to know, thank you."),
        ),
        Exchange(
            ("Can you send me the recipe for that {dish}?", "How did you make the {dish}?"),
            (
                "I'll send it tonight. The secret is a lot of garlic.",
                "Honestly I just followed a video and added more chilli.",
                "It's my mum's recipe, I'll ask her for the exact amounts.",
            ),
            ("Thank you, I want to make it this weekend.", "Perfect, I'll try it on {day}."),
        ),
        Exchange(
            ("I'm craving {food} so badly right now.", "I would do anything for {food} right now."),
            ("Same, let's order.", "Oh my god, same.", "Go and get some, you deserve it."),
            ("Okay I'm ordering. No regrets.", "I'm going to be strong and eat the leftovers."),
            mood="happy",
        ),
    ),
    "work": (
        Exchange(
            ("How was work today?", "How's work going?"),
            (
                "Long. We had three meetings that could have been emails.",
                "Not bad actually, I finished the project I was stressing about.",
                "Honestly exhausting. My manager changed the deadline again.",
            ),
            ("You deserve a quiet evening then.", "Do something nice tonight."),
        ),
        Exchange(
            (
                "I have a presentation tomorrow and I'm so nervous.",
                "Big meeting with the client tomorrow, wish me luck.",
            ),
            (
                "You'll be great, you always are.",
                "Good luck! You've prepared so much for this.",
                "You've got this. Tell me how it goes.",
            ),
            ("Thank you, I needed that.", "I'll text you after."),
        ),
        Exchange(
            ("Did you hear back about the job?", "Any news about the interview?"),
            (
                "Not yet, they said by the end of the week.",
                "Yes, they want me for a second interview!",
                "They went with someone else. I'm a bit gutted, to be honest.",
            ),
            ("Either way, I'm proud of you.", "Fingers crossed for what's next."),
        ),
        Exchange(
            ("My laptop died in the middle of the day.", "The office wifi was down all morning."),
            (
                "Oh no, did you lose anything?",
                "That's a sign to go home early.",
                "Classic. Did you get anything done?",
            ),
            ("Luckily everything was saved.", "Not really, I just answered emails on my phone."),
            mood="sad",
        ),
        Exchange(
            ("I think I'm going to ask for a raise.",),
            ("You should, you've earned it.", "Do it! What's the worst that can happen?"),
            ("Okay, I'm doing it on {day}.", "I'll tell you how it goes."),
            mood="happy",
        ),
    ),
    "movies": (
        Exchange(
            ("Have you seen {film} yet?", "Did you watch {film}?"),
            (
                "Not yet, no spoilers please.",
                "I fell asleep halfway through, to be honest.",
                "I don't know if I want to, I heard it's sad.",
                "Not yet, is it worth it?",
            ),
            ("You have to, it's so good.", "Watch it this weekend so we can talk about it."),
        ),
        Exchange(
            ("Do you want to watch {film} on {day}?", "Cinema on {day}? {film} is out."),
            (
                "Yes, I've been waiting for that one.",
                "Definitely, can we get the late showing?",
                "I'm in. I'll get the snacks.",
            ),
            ("Booking the tickets now.", "Okay, I'll book for {day} then."),
            mood="happy",
        ),
        Exchange(
            ("What should I watch tonight?", "I need a new show to watch."),
            (
                "You have to start {show}.",
                "Watch {film}, it's perfect for a night in.",
                "Have you seen {show}? I finished it in a week.",
            ),
            ("Okay, starting it now.", "Adding it to my list."),
        ),
        Exchange(
            ("Did you see the new episode of {show}?",),
            (
                "Yes and I'm still not over it.",
                "Yes! That ending though.",
                "I did, I can't believe what happened to the sister.",
            ),
            ("The writers are so cruel.", "I need the next one right now."),
            mood="happy",
        ),
    ),
    "family": (
        Exchange(
            ("How's your mum doing?", "How is your family?"),
            (
                "Much better, thank you for asking.",
                "Everyone is good. My brother is visiting next week.",
                "A bit stressed, my dad is renovating the kitchen again.",
            ),
            ("Say hi from me.", "Give them my love."),
        ),
        Exchange(
            ("My mum called me three times today.",),
            ("What did she want?", "Was everything okay?"),
            (
                "She wanted to know if I'm eating enough vegetables.",
                "She just wanted to tell me about the neighbour's new dog.",
            ),
            mood="happy",
        ),
        Exchange(
            ("My dad just discovered voice notes.",),
            ("Oh no, that's dangerous.", "That's actually so cute."),
            ("He sent me four minutes about the weather.", "He holds the phone like a sandwich."),
            mood="happy",
        ),
        Exchange(
            ("Are you going home this weekend?",),
            (
                "Yes, my grandma's birthday is on Sunday.",
                "Yes, I haven't been home in ages.",
                "Probably, my mum will be upset if I don't.",
            ),
            ("Have fun, and bring back food.", "Say hi to everyone from me."),
        ),
        Exchange(
            ("My cousin is getting married in {city}.",),
            ("Oh my god, congratulations to them!", "When is it?"),
            ("In the summer. I need to find an outfit.", "Next year, but I already need a dress."),
            mood="happy",
        ),
    ),
    "travel": (
        Exchange(
            ("Have you booked anything for the summer?", "Where should we go this year?"),
            (
                "I'm thinking about {city}.",
                "I really want to go to {city}.",
                "Somewhere warm, I don't mind where.",
                "I don't know yet, I need to check how much holiday I have left.",
            ),
            ("Let's look at flights this weekend.", "I'd love that. Send me ideas."),
            mood="happy",
        ),
        Exchange(
            (
                "I just found cheap flights to {city}.",
                "Flights to {city} are only forty pounds in {month}.",
            ),
            ("Send me the link!", "Don't tempt me.", "Book it, we'll figure out the rest later."),
            ("Okay, sending it now.", "I'm serious, look at the dates."),
            mood="happy",
        ),
        Exchange(
            ("How was {city}?", "Did you have a good time in {city}?"),
            (
                "Amazing, I want to move there.",
                "So good, but I walked about thirty thousand steps a day.",
                "Lovely, although it rained the whole time.",
            ),
            ("Send me the photos.", "I'm so jealous.", "That sounds like the perfect trip."),
            mood="happy",
        ),
        Exchange(
            ("My train is delayed again.", "I'm stuck at the airport."),
            ("Oh no, for how long?", "That's so annoying, I'm sorry."),
            ("Another hour apparently.", "They haven't said. I'm getting a coffee."),
            mood="sad",
        ),
    ),
    "gossip": (
        Exchange(
            (
                "You will not believe what {friend_m} did.",
                "I have news about {friend_f}.",
                "Okay, I need to tell you something.",
            ),
            ("Tell me everything.", "What happened?", "Oh no. What now?"),
            (
                "{friend_f} and {friend_m} are back together.",
                "{friend_m} quit his job and is moving to {city}.",
                "{friend_f} got engaged!",
                "{friend_m} shaved his beard and nobody recognised him.",
            ),
            mood="news",
        ),
        Exchange(
            ("Did you see {friend_f}'s post?",),
            ("Yes, what was that about?", "No, what did she post?"),
            (
                "A very long caption about new beginnings.",
                "A photo with someone new. We need answers.",
            ),
            mood="news",
        ),
        Exchange(
            ("{friend_m} asked me for {friend_f}'s number.",),
            ("Interesting.", "Did you give it to him?", "Oh, that's cute."),
            ("I said I'd ask her first.", "Not yet, I don't want to get involved."),
            mood="news",
        ),
    ),
    "weekend": (
        Exchange(
            ("Any plans for the weekend?", "What are you doing this weekend?"),
            (
                "Nothing at all and I can't wait.",
                "Cleaning my flat and maybe a walk if it's sunny.",
                "{friend_f}'s birthday on Saturday and then recovering on Sunday.",
                "I'm going to the market on Saturday morning.",
            ),
            ("That sounds perfect.", "Enjoy it, you need it.", "Let me know if you want company."),
            mood="happy",
        ),
        Exchange(
            ("How was your weekend?",),
            (
                "Really nice, I barely left the sofa.",
                "Busy. I don't feel like I had one.",
                "Good! We went for a long walk by the river.",
            ),
            ("Same here, it went way too fast.", "Mine was the same, to be honest."),
        ),
        Exchange(
            ("I'm so hungover.",),
            ("How much did you drink?", "Drink some water and go back to bed."),
            ("Too much. I'm never drinking again.", "I'm on the sofa with toast."),
            mood="happy",
        ),
    ),
    "exams": (
        Exchange(
            ("How's the revision going?", "How is the studying going?"),
            (
                "Badly. I've read the same page four times.",
                "Okay, I finished the first half of my notes.",
                "I've been at the library since nine.",
            ),
            ("You'll be fine, you always say that and then do great.", "Take a break tonight."),
        ),
        Exchange(
            ("My {exam} is on {day}.", "I have my {exam} on {day} and I'm panicking."),
            (
                "You're going to be fine.",
                "Oh my god, that's so soon. You'll be fine though.",
                "Good luck, you've worked so hard.",
            ),
            (
                "Thank you, I really needed to hear that.",
                "Thanks. I'll feel better once it's over.",
            ),
        ),
        Exchange(
            ("I got my results back!",),
            ("And? Tell me!", "Oh my god, how did it go?"),
            ("I passed with a distinction!", "I passed! Not amazing but I passed."),
            mood="happy",
        ),
        Exchange(
            ("Can we study together at the library tomorrow?",),
            ("Yes, I'll be there from ten.", "Sure, I'll save you a seat."),
            ("Perfect, I'll bring snacks.",),
            mood="happy",
        ),
    ),
    "gym": (
        Exchange(
            ("Are you going to the gym today?", "Do you want to come to {gym} with me tomorrow?"),
            (
                "Yes, I'm going after work.",
                "I wasn't planning to but you've convinced me.",
                "Maybe, if I finish work on time.",
            ),
            ("Okay, meet you there at {time}.", "Great, text me when you leave."),
        ),
        Exchange(
            ("I did {gym} this morning and I can't walk.",),
            (
                "That's the best feeling.",
                "Stretch tonight or you'll regret it.",
                "I told you it was hard.",
            ),
            ("I've learned my lesson.", "I'm going to lie on the floor forever."),
            mood="happy",
        ),
        Exchange(
            ("I signed up for a 10k.",),
            ("Oh wow, when is it?", "That's amazing, I'll come and cheer."),
            ("In {month}. I have to start training now.",),
            mood="happy",
        ),
    ),
    "pets": (
        Exchange(
            ("How's {your_pet}?", "How is {your_pet} doing?"),
            (
                "{my_pet} is being a menace as usual.",
                "{my_pet} slept on my laptop all afternoon.",
                "Good! The vet said he's perfect.",
            ),
            ("Give {your_pet} a cuddle from me.", "Send a photo please."),
            mood="happy",
        ),
        Exchange(
            ("{my_pet} knocked a glass off the table again.", "{my_pet} ate a sock this morning."),
            ("Oh no, is {your_pet} okay?", "That's so naughty.", "Why is he like this?"),
            ("He's fine, just very proud of himself.", "He's asleep now like nothing happened."),
            mood="happy",
        ),
    ),
    "music": (
        Exchange(
            ("Have you heard the new {artist} album?",),
            (
                "Yes, I've had it on repeat all week.",
                "Not yet, is it good?",
                "I listened once, I need to give it another go.",
            ),
            ("The third song is my favourite.", "It's so good, listen to it tonight."),
            mood="happy",
        ),
        Exchange(
            (
                "{artist} are playing here in {month}.",
                "Do you want to go to the {artist} gig in {month}?",
            ),
            ("Yes! Are tickets still available?", "I'd love to, how much are tickets?"),
            (
                "I'll check tomorrow when they go on sale.",
                "I'll get us two if they're not too expensive.",
            ),
            mood="happy",
        ),
        Exchange(
            ("Can you send me that playlist?",),
            ("Sending it now.", "Yes, give me a minute."),
            ("Thank you, I need it for the gym.", "Thanks! I've been looking for it all week."),
        ),
    ),
    "home": (
        Exchange(
            ("My landlord still hasn't fixed the heating.", "The boiler broke again."),
            ("That's ridiculous, send him another email.", "It's been weeks!"),
            ("I know. I'm wearing two jumpers.", "I've emailed him three times already."),
            mood="sad",
        ),
        Exchange(
            ("I'm thinking of repainting my room.",),
            ("What colour?", "Do it, it'll feel like a new room."),
            ("Something green, maybe sage.", "I'm going to the shop on {day}."),
        ),
    ),
    "checkin": (
        Exchange(
            ("How was your day?", "How are you feeling today?", "How's your week going?"),
            (
                "Pretty good, just tired.",
                "Long, but it's over now.",
                "Honestly not great, I have a headache.",
                "Really good actually!",
            ),
            ("Get some rest tonight.", "Well, the weekend is almost here."),
        ),
        Exchange(
            ("I just woke up from a three hour nap.",),
            ("Your sleep schedule is ruined now.", "That sounds so relaxing."),
            ("I know. Worth it.", "I regret nothing."),
            mood="happy",
        ),
    ),
    "crew": (
        Exchange(
            ("Who's in for {food} on {day}?", "{food} on {day}, anyone?"),
            ("Me!", "I'm in.", "Can't this time, I'm working.", "Count me in."),
            ("Booking a table for {time}.", "Great, {place} at {time} then."),
            mood="happy",
        ),
        Exchange(
            ("Should we do a trip in {month}?", "We need a weekend away. Ideas?"),
            (
                "Yes! Where?",
                "I'm in if it's not too expensive.",
                "Somewhere with a lake, please.",
            ),
            ("What about a cabin somewhere quiet?", "I'll make a list and we can vote."),
            mood="happy",
        ),
        Exchange(
            ("Pub quiz on {day}?",),
            ("Always.", "I'm in, but I'm useless at geography.", "Only if we win this time."),
            ("Great, I'll ask {friend_m} to save us a table.",),
            mood="happy",
        ),
    ),
}

# (topics, weights); "pets" and "family" only make sense between two people
PAIR_TOPICS = (
    ("plans", "food", "work", "movies", "family", "travel", "gossip", "weekend", "exams"),
    (12, 9, 8, 7, 6, 5, 8, 7, 5),
)
PAIR_TOPICS_EXTRA = (("gym", "pets", "music", "home", "checkin"), (4, 4, 5, 3, 10))
GROUP_TOPICS = (
    ("crew", "plans", "weekend", "food", "movies", "travel", "gossip", "music", "gym", "work"),
    (14, 8, 8, 6, 6, 7, 6, 6, 3, 3),
)

# Maya's own words: used as they are
MAYA_OPENERS = ("heyyy", "hiii", "omg", "ok so", "okay so", "wait", "guess what", "hello hello")
MAYA_GROUP_OPENERS = ("guysss", "ok everyone", "hiii", "omg", "ok so", "wait")
MAYA_SEGUES = ("ok but", "also", "anyway", "btw", "ok random but", "wait")
MAYA_REACTIONS = {
    "happy": (
        "hahaha",
        "hahahah",
        "hahah",
        "lmaooo",
        "lmaoooo",
        "😂😂",
        "😂😂😂",
        "no bc 💀",
        "stoppp",
        "yesss",
        "im crying",
        "the way i screamed",
        "iconic",
        "obsessed",
        "this is sooo u",
        "🥹🥹",
    ),
    "sad": (
        "noooo",
        "oh noooo",
        "🥹🥹",
        "ugh",
        "thats sooo annoying",
        "im sorry 🥹",
        "sending hugs ❤️",
        "not again 😭",
    ),
    "news": (
        "wait what",
        "wait what 😭",
        "noooo way",
        "omg",
        "stoppp",
        "the drama 💀",
        "im screaming",
        "💀💀",
    ),
    "plain": ("ok ok ok", "hahah", "sooo true", "literally", "fair", "mood", "same tbh"),
}
MAYA_PLAIN_LEADS = ("ok ok ok", "omg", "hmm", "ooh", "wait", "hahah")
MAYA_SHOUTS = ("OMG", "NO WAY", "STOP", "WAIT WHAT")
MAYA_CLOSERS = (
    "nightttt 🥹",
    "ok byeee",
    "love uuu ✨",
    "sleep welll",
    "night night ✨",
    "ok going to sleep now 🙈",
    "talk tmrw",
    "byeee",
)
MAYA_LATE = (
    "omg sorry just seeing this",
    "sorry today was sooo busy",
    "sorry my phone died 🙈",
)
MAYA_MEDIA_COMMENTS = (
    "this is literally u 😂",
    "look at thisss",
    "obsessed 🥹",
    "me rn",
    "the accuracy 💀",
)
MAYA_SIGNATURES = ("no bc ", "literally ", "ngl ", "omg ", "tbh ", "honestly ")
MAYA_EMOJI = (("😂", "✨", "🥹", "🙈", "💀", "😭", "❤️"), (30, 16, 15, 12, 15, 8, 4))

# (pattern, replacement, chance) applied in order to Maya's lowercased text
MAYA_SWAPS = tuple(
    (re.compile(rf"\b{pattern}\b"), replacement, chance)
    for pattern, replacement, chance in (
        ("oh my god", "omg", 0.95),
        ("i don't know", "idk", 0.9),
        ("to be honest", "tbh", 0.9),
        ("not going to lie", "ngl", 0.9),
        ("right now", "rn", 0.9),
        ("by the way", "btw", 0.9),
        ("thank you so much", "tysm", 0.8),
        ("are you", "r u", 0.5),
        ("you're", "ur", 0.9),
        ("your", "ur", 0.9),
        ("you", "u", 0.9),
        ("i'm", "im", 0.85),
        ("i've", "ive", 0.6),
        ("don't", "dont", 0.8),
        ("can't", "cant", 0.8),
        ("that's", "thats", 0.6),
        ("it's", "its", 0.6),
        ("what's", "whats", 0.7),
        ("going to", "gonna", 0.8),
        ("want to", "wanna", 0.8),
        ("because", "bc", 0.7),
        ("please", "pls", 0.5),
        ("tomorrow", "tmrw", 0.6),
        ("really", "sooo", 0.3),
        ("so", "sooo", 0.5),
        ("yes", "yesss", 0.6),
        ("no", "noooo", 0.4),
    )
)
# word: index of the letter Maya repeats when she stretches it
MAYA_STRETCH = {"good": 2, "cute": 3, "love": 3, "stop": 3, "tired": 4, "sorry": 4, "amazing": 6}

PAIR_GREETINGS = ("Hi Maya!", "Hey!", "Hey, quick question.", "Hi!")
GROUP_GREETINGS = ("Hi all!", "Hey everyone!", "Hello everyone.", "Quick one for the group.")
OTHER_REACTIONS = {
    "happy": ("Haha, love it.", "Love that.", "That sounds great.", "Perfect.", "Brilliant."),
    "sad": ("Oh no, that's annoying.", "Sorry to hear that.", "That's rough.", "Ugh, I'm sorry."),
    "news": ("No way!", "I did not see that coming.", "Wow, really?", "Good for them, honestly."),
    "plain": (
        "Fair enough.",
        "Good to know.",
        "Makes sense.",
        "Sounds good to me.",
        "Thanks.",
        "True.",
    ),
}
OTHER_CLOSERS = (
    "Good night!",
    "Talk tomorrow.",
    "Speak soon.",
    "Night, sleep well.",
    "Okay, I'm off to bed. Night!",
)
OTHER_MEDIA_COMMENTS = ("Look at this.", "Thought you'd like this.", "The view from work today.")
TAILS = {  # added to questions
    SAM: ("Let me know.", "No rush."),
    JONAS: ("Let me know what you think.", "Cheers."),
    PRIYA: ("Let me know!", "No pressure!"),
}
OTHER_EMOJI = ("🙂", "👍", "😊", "😄")
EMOJI_CHANCE = {SAM: 0.05, JONAS: 0.02, PRIYA: 0.07}

# Scripted moments, placed on random days: fictional contact details for the privacy
# tests, multi-line messages (with a blank line), missed calls and group events.
# Each line is (author, kind, text), written as it appears.
PAIR_SCRIPTS: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (
        (SAM, "text", "New number, by the way: +44 7700 900123. The old one stops on Friday."),
        (PERSONA, "text", "ok saving it"),
        (PERSONA, "text", "new phone who dis 😂"),
    ),
    (
        (PERSONA, "text", "wait whats ur email again"),
        (PERSONA, "text", "i need to send u the flat stuff"),
        (SAM, "text", "It's sam.reyes@example.com. Thanks!"),
    ),
    (
        (SAM, "text", "This is the flat I told you about: https://example.com/listings/4417"),
        (PERSONA, "text", "omg the kitchen 🥹"),
        (PERSONA, "text", "u have to go see it"),
    ),
    (
        (PERSONA, "text", "my new email is maya.okafor@example.com btw"),
        (PERSONA, "text", "the uni one stopped working 🙈"),
        (SAM, "text", "Got it, I'll update it."),
    ),
    (
        (SAM, "text", "Anna's number is +44 7700 900987 if you need it for the party."),
        (PERSONA, "text", "ur a lifesaver ✨"),
    ),
    (
        (PERSONA, "text", "ok so\n\ni have thoughts about last night 💀"),
        (PERSONA, "text", "call me"),
        (SAM, "text", "Ha, I had a feeling. Calling you after dinner."),
    ),
    (
        (
            SAM,
            "text",
            "Shopping list for Saturday:\n- Charcoal\n- Halloumi\n- Lemons\n\nAnything else?",
        ),
        (PERSONA, "text", "wine obviously"),
        (PERSONA, "text", "and crisps ✨"),
    ),
    (
        (PERSONA, "missed_call", ""),
        (PERSONA, "text", "call me when u can"),
        (SAM, "text", "Sorry, I was in a meeting. Calling you in five minutes."),
    ),
    (
        (PERSONA, "missed_call", ""),
        (SAM, "text", "Sorry, I was driving. Is everything okay?"),
        (PERSONA, "text", "yes yes all good"),
        (PERSONA, "text", "just wanted to tell u something funny hahaha"),
    ),
    (
        (SAM, "missed_call", ""),
        (SAM, "text", "Tried to call you. Give me a ring when you're free."),
        (PERSONA, "text", "omw home, calling u in 10"),
    ),
    (
        (PERSONA, "missed_call", ""),
        (PERSONA, "text", "pick upppp"),
        (PERSONA, "text", "its about tom 💀"),
    ),
)
GROUP_SCRIPTS: tuple[tuple[tuple[str, str, str], ...], ...] = (
    (
        (
            JONAS,
            "text",
            "Cabin booked for the May bank holiday! https://example.com/cabins/pine-hollow",
        ),
        (PRIYA, "text", "Amazing, thank you Jonas!"),
        (PERSONA, "text", "yesss"),
        (PERSONA, "text", "cabin weekend ✨✨"),
    ),
    (
        (JONAS, "text", "Packing list for the cabin:\n\n- Sleeping bags\n- Board games\n- Snacks"),
        (PERSONA, "text", "the last one is sooo important"),
        (PERSONA, "text", "hahaha"),
    ),
    (
        (PRIYA, "text", "If anyone needs me tonight, the ward desk number is +44 7700 900456."),
        (SAM, "text", "Noted. Hope it's a quiet shift."),
    ),
    (
        (PRIYA, "text", "Please send your cabin photos to priya.photos@example.com for the album."),
        (PERSONA, "text", "sending them rn"),
        (PERSONA, "text", "there r like 200 🙈"),
    ),
    (
        (SAM, "text", "Jonas, what's your new number again?"),
        (JONAS, "text", "It's +44 7700 900321. The German one is gone now."),
    ),
    (
        (PERSONA, "text", "guys\n\ni have news"),
        (PERSONA, "text", "i passed my final review ✨✨"),
        (PRIYA, "text", "Congratulations! So proud of you."),
        (JONAS, "text", "Well done, Maya! We should celebrate."),
        (SAM, "text", "Knew you would. Drinks on me this weekend."),
    ),
    ((PRIYA, "system", "Priya changed this group's icon"),),
)

MEDIA_KINDS = (("image", "sticker", "audio", "video"), (55, 25, 12, 8))
ANDROID_BODIES = {
    "image": "<Media omitted>",
    "sticker": "<Media omitted>",
    "audio": "<Media omitted>",
    "video": "<Media omitted>",
    "deleted": "This message was deleted",
    "deleted_own": "You deleted this message",
    "missed_call": "Missed voice call",
}
IOS_BODIES = {
    "image": f"{LRM}image omitted",
    "sticker": f"{LRM}sticker omitted",
    "audio": f"{LRM}audio omitted",
    "video": f"{LRM}video omitted",
    "deleted": f"{LRM}This message was deleted.",
    "deleted_own": f"{LRM}You deleted this message.",
}
EDITED = " <This message was edited>"

# When people talk, as (choices, weights)
EVENING_HOURS = ((19, 20, 21, 22, 23, 24), (10, 16, 22, 22, 18, 8))  # 24: just after midnight
DAY_HOURS = (tuple(range(7, 19)), (3, 6, 8, 8, 9, 12, 10, 8, 8, 9, 10, 9))
MAYA_SECONDS = (((5, 40), (40, 150), (150, 420)), (60, 30, 10))  # her reply time, in seconds
OTHER_FIRST = (((1, 10), (10, 60), (60, 180), (180, 300)), (35, 40, 20, 5))  # minutes
OTHER_ENGAGED = (((1, 5), (5, 20), (20, 90)), (40, 40, 20))  # minutes, once a chat is going
MAX_DRIFT = timedelta(hours=4)  # how late a conversation may start before it is dropped
LONG_WAIT = timedelta(hours=6)  # a wait this long (overnight) ends a conversation
CHAT_ACTS = ("ask", "say", "react", "close")  # turns that are made up, not scripted
RECENT = 12  # exchanges a chat avoids repeating


@dataclass(frozen=True, slots=True)
class _ChatSpec:
    """Who is in a chat, how often they talk and about what."""

    members: tuple[str, ...]
    starters: tuple[int, ...]  # weight of each member starting a conversation
    per_day: tuple[int, ...]  # weights of 0, 1, 2... conversations on a day
    topics: tuple[tuple[str, ...], tuple[int, ...]]
    scripts: tuple[tuple[tuple[str, str, str], ...], ...]

    @property
    def group(self) -> bool:
        """More than two people."""
        return len(self.members) > 2


PAIR = _ChatSpec(
    members=(PERSONA, SAM),
    starters=(60, 40),
    per_day=(0, 3, 10, 24, 34, 29),
    topics=(PAIR_TOPICS[0] + PAIR_TOPICS_EXTRA[0], PAIR_TOPICS[1] + PAIR_TOPICS_EXTRA[1]),
    scripts=PAIR_SCRIPTS,
)
GROUP = _ChatSpec(
    members=(PERSONA, SAM, JONAS, PRIYA),
    starters=(36, 18, 26, 20),
    per_day=(6, 26, 34, 24, 10),
    topics=GROUP_TOPICS,
    scripts=GROUP_SCRIPTS,
)


@dataclass(slots=True)
class _Turn:
    """One person's go in a conversation, before it is worded and timed."""

    author: str
    act: str  # "ask", "say", "react", "close", "media", or a scripted kind ("text", ...)
    text: str = ""
    mood: str = "plain"
    opens: bool = False


@dataclass(slots=True)
class _Line:
    """One message as it will be written: kind is "text", "edited", a media kind..."""

    ts: datetime
    author: str
    kind: str
    text: str


# ---------------------------------------------------------------------------------------
# Public API
# ---------------------------------------------------------------------------------------


def generate_sample(
    seed: int = 7, *, start: date = date(2024, 1, 1), days: int = 366, scale: float = 1.0
) -> dict[str, str]:
    """Both sample exports as {file name: file text}; the same arguments give the same bytes."""
    if days < 1 or scale <= 0:
        raise ValueError("days must be at least 1 and scale above 0")
    return {
        PAIR_FILE: _pair_export(random.Random(f"{seed}:pair"), start, days, scale),
        GROUP_FILE: _group_export(random.Random(f"{seed}:group"), start, days, scale),
    }


def write_sample(
    directory: Path,
    *,
    seed: int = 7,
    start: date = date(2024, 1, 1),
    days: int = 366,
    scale: float = 1.0,
) -> list[Path]:
    """Write the sample exports into `directory` byte for byte; returns their paths."""
    directory.mkdir(parents=True, exist_ok=True)
    paths = []
    exports = generate_sample(seed, start=start, days=days, scale=scale)
    for name, text in exports.items():
        path = directory / name
        path.write_bytes(text.encode("utf-8"))
        paths.append(path)
    return paths


def sample_paths() -> list[Path]:
    """The bundled sample exports: the Android chat with Sam, then the iOS group chat."""
    return [DATA_DIR / PAIR_FILE, DATA_DIR / GROUP_FILE]


# ---------------------------------------------------------------------------------------
# Exports
# ---------------------------------------------------------------------------------------


def _pair_export(rng: random.Random, start: date, days: int, scale: float) -> str:
    """The Android one-to-one chat with Sam: LF line endings, 24-hour clock."""
    opened = datetime.combine(start, time(9, 12))
    lines = _chat_lines(rng, PAIR, opened, start, days, scale)
    rows = [f"{opened:%d/%m/%Y, %H:%M} - {ANDROID_ENCRYPTION}"]
    rows += [_android_row(line) for line in lines]
    return "\n".join(rows) + "\n"


def _group_export(rng: random.Random, start: date, days: int, scale: float) -> str:
    """The iOS group chat: CRLF line endings, 12-hour clock with seconds."""
    created = datetime.combine(start + timedelta(days=min(days - 1, 1)), time(10, 0))
    header = [
        _Line(created, GROUP_NAME, "system", IOS_ENCRYPTION),
        _Line(created, JONAS, "system", f"{LRM}{JONAS} created group “{GROUP_NAME}”"),
    ]
    for offset, member in enumerate((PERSONA, SAM, PRIYA), start=1):
        when = created + timedelta(seconds=7 * offset)
        header.append(_Line(when, JONAS, "system", f"{LRM}{JONAS} added {member}"))
    lines = _chat_lines(rng, GROUP, created + timedelta(minutes=5), start, days, scale)
    rows = [_ios_row(line) for line in header + lines]
    return "\r\n".join(row.replace("\n", "\r\n") for row in rows) + "\r\n"


def _android_row(line: _Line) -> str:
    if line.kind in ("text", "edited"):
        body = line.text + (EDITED if line.kind == "edited" else "")
    else:
        body = ANDROID_BODIES[_own(line)]
    return f"{line.ts:%d/%m/%Y, %H:%M} - {line.author}: {body}"


def _ios_row(line: _Line) -> str:
    texts = ("text", "edited", "system")
    body = line.text if line.kind in texts else IOS_BODIES[_own(line)]
    hour = line.ts.hour % 12 or 12
    half = "AM" if line.ts.hour < 12 else "PM"
    stamp = f"{line.ts.month}/{line.ts.day}/{line.ts:%y}, {hour}:{line.ts:%M:%S}{NNBSP}{half}"
    return f"[{stamp}] {line.author}: {body}"


def _own(line: _Line) -> str:
    """Deleted messages read differently when the exporter (Maya) deleted them."""
    return "deleted_own" if line.kind == "deleted" and line.author == PERSONA else line.kind


# ---------------------------------------------------------------------------------------
# A year of conversations
# ---------------------------------------------------------------------------------------


def _chat_lines(
    rng: random.Random, spec: _ChatSpec, first: datetime, start: date, days: int, scale: float
) -> list[_Line]:
    """Every message of a chat, in time order, from `first` to the end of the last day."""
    end = datetime.combine(start + timedelta(days=days), time())
    middle = range(1, max(days - 2, 1))
    picked = rng.sample(middle, min(len(spec.scripts), len(middle)))
    script_days = dict(zip(picked, spec.scripts, strict=False))
    recent: deque[Exchange] = deque(maxlen=RECENT)
    cursor, lines = first, []
    for offset in range(days):
        day = start + timedelta(days=offset)
        plans = [(when, turns, False) for when, turns in _plan_day(rng, spec, day, scale, recent)]
        if offset in script_days:
            turns = [_Turn(author, kind, text) for author, kind, text in script_days[offset]]
            plans.append((_start_time(rng, day, evening=True), turns, True))
        for planned, turns, scripted in sorted(plans, key=lambda plan: plan[0]):
            begin = max(planned, cursor + timedelta(minutes=rng.randrange(10, 90)))
            if begin - planned > MAX_DRIFT and not scripted:
                continue  # still busy with the last conversation: this one never happens
            conversation = _timed(rng, turns, begin, _slots(rng), spec.members)
            lines += conversation
            cursor = conversation[-1].ts
    return [line for line in lines if line.ts < end]


def _plan_day(
    rng: random.Random, spec: _ChatSpec, day: date, scale: float, recent: deque[Exchange]
) -> list[tuple[datetime, list[_Turn]]]:
    """The conversations started on `day`: when, and who says what."""
    base = rng.choices(range(len(spec.per_day)), spec.per_day)[0] * scale
    count = int(base) + (rng.random() < base - int(base))
    dialogue = _group_dialogue if spec.group else _pair_dialogue
    plans = []
    for _ in range(count):
        starter = rng.choices(spec.members, spec.starters)[0]
        evening = rng.random() < (0.9 if starter == PERSONA else 0.35)
        turns = dialogue(rng, spec, starter, evening, recent)
        plans.append((_start_time(rng, day, evening), turns))
    return plans


def _start_time(rng: random.Random, day: date, evening: bool) -> datetime:
    hours, weights = EVENING_HOURS if evening else DAY_HOURS
    hour = rng.choices(hours, weights)[0]
    offset = timedelta(hours=hour, minutes=rng.randrange(60), seconds=rng.randrange(60))
    return datetime.combine(day, time()) + offset


def _slots(rng: random.Random) -> dict[str, str]:
    """One value per slot, so a conversation keeps talking about the same day, place..."""
    return {name: rng.choice(values) for name, values in SLOTS.items()}


# ---------------------------------------------------------------------------------------
# Who says what
# ---------------------------------------------------------------------------------------


def _pair_dialogue(
    rng: random.Random, spec: _ChatSpec, starter: str, evening: bool, recent: deque[Exchange]
) -> list[_Turn]:
    """Two people: an exchange, then maybe one or two more with the roles swapped."""
    other = spec.members[1] if starter == spec.members[0] else spec.members[0]
    if rng.random() < 0.06:
        return _share(rng, starter, [other])
    topic, exchange = _pick(rng, spec, recent)
    turns = _exchange(rng, exchange, starter, [other], opens=True)
    asker, answerer = other, starter
    for chance in (0.85, 0.6, 0.4) if evening else (0.4, 0.2):
        if rng.random() >= chance:
            break
        topic, exchange = _pick(rng, spec, recent, topic if rng.random() < 0.6 else None)
        turns += _exchange(rng, exchange, asker, [answerer])
        asker, answerer = answerer, asker
    if evening and rng.random() < 0.5:
        turns += [_Turn(starter, "close"), _Turn(other, "close")]
    return turns


def _group_dialogue(
    rng: random.Random, spec: _ChatSpec, starter: str, evening: bool, recent: deque[Exchange]
) -> list[_Turn]:
    """The group: someone asks, one to three answer, and sometimes someone else asks."""
    others = [m for m in spec.members if m != starter]
    if rng.random() < 0.06:
        return _share(rng, starter, others)
    _, exchange = _pick(rng, spec, recent)
    turns = _exchange(rng, exchange, starter, _answerers(rng, others, evening), opens=True)
    if rng.random() < (0.55 if evening else 0.35):
        asker = rng.choice([m for m in spec.members if m != turns[-1].author])
        _, exchange = _pick(rng, spec, recent)
        rest = [m for m in spec.members if m != asker]
        turns += _exchange(rng, exchange, asker, _answerers(rng, rest, evening))
    return turns


def _answerers(rng: random.Random, others: list[str], evening: bool) -> list[str]:
    """One to three people answer in the group; Maya mostly in the evening."""
    if not evening and PERSONA in others and rng.random() < 0.6:
        others = [m for m in others if m != PERSONA]
    chosen = rng.sample(others, min(len(others), rng.choices((1, 2, 3), (3, 4, 3))[0]))
    if evening and PERSONA in others and PERSONA not in chosen and rng.random() < 0.6:
        chosen[rng.randrange(len(chosen))] = PERSONA
    return chosen


def _pick(
    rng: random.Random, spec: _ChatSpec, recent: deque[Exchange], topic: str | None = None
) -> tuple[str, Exchange]:
    """A topic (`topic` if it has any left) and an exchange of it not heard lately."""
    while True:
        if topic is None:
            topic = rng.choices(*spec.topics)[0]
        fresh = [exchange for exchange in TOPICS[topic] if exchange not in recent]
        if fresh:
            exchange = rng.choice(fresh)
            recent.append(exchange)
            return topic, exchange
        topic = None


def _exchange(
    rng: random.Random, exchange: Exchange, asker: str, answerers: list[str], *, opens: bool = False
) -> list[_Turn]:
    """An ask, an answer from each answerer, then maybe a follow-up and a reaction."""
    mood = exchange.mood
    turns = [_Turn(asker, "ask", rng.choice(exchange.asks), mood, opens)]
    answers = rng.sample(exchange.answers, min(len(answerers), len(exchange.answers)))
    turns += [_Turn(who, "say", text, mood) for who, text in zip(answerers, answers, strict=False)]
    asked_back = any(answer.endswith("?") for answer in answers)
    if exchange.follows and (asked_back or rng.random() < 0.75):
        turns.append(_Turn(asker, "say", rng.choice(exchange.follows), mood))
        if rng.random() < 0.4:
            turns.append(_Turn(rng.choice(answerers), "react", mood=mood))
    elif rng.random() < 0.5:
        turns.append(_Turn(asker, "react"))  # an acknowledgement, whatever the news
    return turns


def _share(rng: random.Random, sharer: str, others: list[str]) -> list[_Turn]:
    """Someone sends a photo or sticker and someone else reacts."""
    turns = [_Turn(sharer, "media"), _Turn(rng.choice(others), "react", mood="happy")]
    if rng.random() < 0.5:
        turns.append(_Turn(sharer, "react", mood="happy"))
    return turns


# ---------------------------------------------------------------------------------------
# Timing
# ---------------------------------------------------------------------------------------


def _timed(
    rng: random.Random,
    turns: list[_Turn],
    begin: datetime,
    slots: dict[str, str],
    members: Sequence[str],
) -> list[_Line]:
    """Word each turn and give every message a time: Maya fast, the others slow.

    Only the first answer may wait overnight or until Maya is free; later on, such a wait
    ends the conversation instead, the way chats fizzle out at bedtime.
    """
    lines: list[_Line] = []
    ts, previous = begin, None
    turn_start = 0
    for number, turn in enumerate(turns):
        late = False
        if previous is not None:
            same = turn.author == previous
            late = not same and _busy(rng, turn, ts, engaged=number > 1)
            after = _next_time(rng, ts, turn.author, same=same, late=late, engaged=number > 1)
            if number > 1 and turn.act in CHAT_ACTS and (late or after - ts > LONG_WAIT):
                if turns[number - 1].act == "ask":
                    del lines[turn_start:]  # nobody answers: the question was never asked
                break
            ts = after
        turn_start = len(lines)
        if turn.act == "close" and 5 <= ts.hour < 17:
            break  # the chat ran into the next day: nobody says good night in the morning
        addressee = _addressee(turn.author, previous, members)
        said = _words(rng, turn, slots, addressee, members, late=late, spare=_spare_time(ts))
        for index, (kind, text) in enumerate(said):
            if index:
                ts += timedelta(seconds=rng.randint(3, 25 if turn.author == PERSONA else 60))
            lines.append(_Line(ts, turn.author, kind, text))
        previous = turn.author
    return lines


def _spare_time(ts: datetime) -> bool:
    """Maya's free evening, 19:00 to 01:00, when she writes the most."""
    return ts.hour >= 19 or ts.hour < 1


def _busy(rng: random.Random, turn: _Turn, ts: datetime, *, engaged: bool) -> bool:
    """Maya sleeps in and works at a studio on weekdays: many daytime replies wait."""
    if turn.author != PERSONA or not 7 <= ts.hour < 17:
        return False
    if ts.hour < 11:
        return rng.random() < 0.8
    return ts.weekday() < 5 and rng.random() < (0.15 if engaged else 0.55)


def _next_time(
    rng: random.Random, ts: datetime, author: str, *, same: bool, late: bool, engaged: bool
) -> datetime:
    """When the next turn starts; the others answer faster once a chat is going."""
    if same:
        return ts + timedelta(seconds=rng.randint(5, 90))
    if late:
        return ts.replace(hour=rng.choice((19, 20, 21)), minute=rng.randrange(60))
    if author == PERSONA:
        seconds = rng.choices(*MAYA_SECONDS)[0]
        return ts + timedelta(seconds=rng.randint(*seconds))
    spans, weights = OTHER_ENGAGED if engaged else OTHER_FIRST
    minutes = rng.choices(spans, weights)[0]
    return _after_night(rng, ts + timedelta(minutes=rng.randint(*minutes)))


def _after_night(rng: random.Random, ts: datetime) -> datetime:
    """The others go to bed: a reply that would land at night arrives next morning."""
    if ts.hour < 7 or (ts.hour, ts.minute) >= (23, 30):
        morning = datetime.combine(ts.date() + timedelta(days=ts.hour >= 23), time())
        return morning + timedelta(hours=rng.choice((7, 8, 9)), minutes=rng.randrange(60))
    return ts


def _addressee(author: str, previous: str | None, members: Sequence[str]) -> str:
    if previous is not None and previous != author:
        return previous
    return next(m for m in members if m != author)


# ---------------------------------------------------------------------------------------
# Wording
# ---------------------------------------------------------------------------------------


def _words(
    rng: random.Random,
    turn: _Turn,
    slots: dict[str, str],
    addressee: str,
    members: Sequence[str],
    *,
    late: bool,
    spare: bool,
) -> list[tuple[str, str]]:
    """The (kind, text) messages one turn sends."""
    maya, group = turn.author == PERSONA, len(members) > 2
    if turn.act in ("ask", "say"):
        pets = {"my_pet": PETS[turn.author], "your_pet": PETS[addressee]}
        text = turn.text.format_map(slots | pets)
        if maya:
            lead, tail = _maya_lead(rng, turn, group, spare), _maya_tail(rng, turn, spare)
            said = _maya_burst(rng, text, lead, tail)
            if late and rng.random() < 0.6:
                said.insert(0, rng.choice(MAYA_LATE))
        else:
            said = _other_message(rng, turn, text, group)
        return _slips(rng, turn.author, [("text", message) for message in said])
    if turn.act == "react":
        return [("text", rng.choice((MAYA_REACTIONS if maya else OTHER_REACTIONS)[turn.mood]))]
    if turn.act == "close":
        return [("text", rng.choice(MAYA_CLOSERS if maya else OTHER_CLOSERS))]
    if turn.act == "media":
        comment = rng.choice(MAYA_MEDIA_COMMENTS if maya else OTHER_MEDIA_COMMENTS)
        return [(rng.choices(*MEDIA_KINDS)[0], ""), ("text", comment)]
    return [(turn.act, turn.text)]


def _slips(rng: random.Random, author: str, said: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Now and then a message is deleted, edited, or followed by a sticker or voice note."""
    said = [("edited" if rng.random() < 0.012 else kind, text) for kind, text in said]
    if rng.random() < 0.01:
        said.insert(0, ("deleted", ""))
    if author == PERSONA and rng.random() < 0.04:
        said.append((rng.choice(("sticker", "sticker", "audio")), ""))
    return said


def _sentences(text: str) -> list[str]:
    return [s for s in re.split(r"(?<=[.!?])\s+", text) if s]


def _maya_lead(rng: random.Random, turn: _Turn, group: bool, spare: bool) -> str | None:
    """What Maya sends first: a greeting, a segue to a new question, or a reaction."""
    if turn.opens:
        pool, chance = (MAYA_GROUP_OPENERS if group else MAYA_OPENERS), 0.6
    elif turn.act == "ask":
        pool, chance = MAYA_SEGUES, 0.4
    else:
        pool = MAYA_PLAIN_LEADS if turn.mood == "plain" else MAYA_REACTIONS[turn.mood]
        chance = 0.35
    return rng.choice(pool) if rng.random() < chance * (1 if spare else 0.5) else None


def _maya_tail(rng: random.Random, turn: _Turn, spare: bool) -> str | None:
    """Laughter or a reaction after her answer; fewer when she is busy."""
    if turn.act == "say" and rng.random() < (0.3 if spare else 0.15):
        return rng.choice(MAYA_REACTIONS[turn.mood])
    return None


def _maya_burst(rng: random.Random, text: str, lead: str | None, tail: str | None) -> list[str]:
    """Maya's take on `text`: several short lowercase messages, emoji, laughter."""
    clauses = [clause for sentence in _sentences(text) for clause in _maya_clauses(rng, sentence)]
    pieces = [rng.choice(MAYA_SHOUTS)] if rng.random() < 0.02 else []
    if lead and not (clauses and clauses[0].startswith(lead)):
        pieces.append(lead)
    pieces += clauses
    if tail:
        pieces.append(tail)
    return [_maya_emoji(rng, piece) for piece in pieces]


def _maya_clauses(rng: random.Random, sentence: str) -> list[str]:
    """One sentence, restyled, sometimes sent as two messages split at a comma."""
    text = sentence.lower()
    for pattern, replacement, chance in MAYA_SWAPS:
        text = pattern.sub(lambda m, r=replacement, c=chance: r if rng.random() < c else m[0], text)
    text = re.sub(r"[a-z]+", lambda m: _stretch(rng, m[0]), text)
    signed = text.startswith(tuple(s.strip() for s in MAYA_SIGNATURES))
    if not signed and not text.endswith("?") and rng.random() < 0.18:
        text = rng.choice(MAYA_SIGNATURES) + text
    parts = text.split(", ") if len(text) > 35 and rng.random() < 0.6 else [text]
    return [ending for part in parts if (ending := _maya_ending(rng, part))]


def _stretch(rng: random.Random, word: str) -> str:
    index = MAYA_STRETCH.get(word)
    if index is None or rng.random() >= 0.4:
        return word
    return word[:index] + word[index] * rng.randint(2, 4) + word[index + 1 :]


def _maya_ending(rng: random.Random, text: str) -> str:
    """No full stops or exclamation marks; a question mark now and then."""
    text = text.rstrip(".!,")
    if text.endswith("?") and rng.random() < 0.7:
        text = text.rstrip("?")
    return text


def _maya_emoji(rng: random.Random, text: str) -> str:
    if not text[-1].isascii() or rng.random() >= 0.4:
        return text
    emoji = rng.choices(*MAYA_EMOJI)[0] * rng.choices((1, 2, 3), (60, 30, 10))[0]
    return text + ("" if rng.random() < 0.3 else " ") + emoji


def _other_message(rng: random.Random, turn: _Turn, text: str, group: bool) -> list[str]:
    """Sam, Jonas and Priya: whole sentences, one longer message, few emoji."""
    sentences = _sentences(text)
    if turn.opens and rng.random() < 0.4:
        sentences.insert(0, rng.choice(GROUP_GREETINGS if group else PAIR_GREETINGS))
    if turn.act == "ask" and sentences[-1].endswith("?") and rng.random() < 0.25:
        sentences.append(rng.choice(TAILS[turn.author]))
    sentences = [_tidy(s) for s in sentences]
    if rng.random() < EMOJI_CHANCE[turn.author]:
        sentences[-1] += " " + rng.choice(OTHER_EMOJI)
    if len(sentences) > 2 and rng.random() < 0.15:
        return [sentences[0], " ".join(sentences[1:])]
    return [" ".join(sentences)]


def _tidy(sentence: str) -> str:
    sentence = sentence[0].upper() + sentence[1:]
    return sentence if sentence[-1] in ".!?" else sentence + "."


def main(argv: Sequence[str] | None = None) -> None:
    """Write the sample exports into a folder: python -m style.sample OUTDIR."""
    parser = argparse.ArgumentParser(prog="python -m style.sample", description=main.__doc__)
    parser.add_argument("outdir", type=Path, help="folder to write the exports into")
    parser.add_argument("--seed", type=int, default=7, help="random seed (default 7)")
    parser.add_argument("--scale", type=float, default=1.0, help="conversation count multiplier")
    args = parser.parse_args(argv)
    for path in write_sample(args.outdir, seed=args.seed, scale=args.scale):
        print(path)


if __name__ == "__main__":
    main()
