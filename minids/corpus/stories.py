"""The stories: short English stories, about 70 % of the characters of the corpus.

Characters with names, traits and pronouns, places, a problem and its resolution,
dialogue in quotation marks. A story is an opening, one of the plots, an ending: each a
script in the template language below, filled from a context chosen once per story so
that it stays consistent. `filler_sentence` draws single sentences from the same grammar
(the haystack of the passkey documents).
"""

import random
import re
from dataclasses import dataclass

# --------------------------------------------------------------------------------------
# The template language of the stories.
#
#   {hero}, {hero.his}, {toy.the}  a value of the story's context (str.format)
#   [big|small|old]                 one of the choices, picked at random
#   a || b                          (between whole lines) one of the alternatives
#   ? at the start of a line        the line is kept half of the time
#   an empty line                   a new paragraph
# --------------------------------------------------------------------------------------

_CHOICE = re.compile(r"\[([^\[\]]*)\]")
_VOWEL_SOUND_EXCEPTIONS = ("honest", "hour")  # written with a consonant, said with a vowel
_CONSONANT_SOUND_EXCEPTIONS = ("uni", "use", "one", "eu")


def article(phrase: str) -> str:
    """'a' or 'an' + phrase, by the sound of its first word."""
    word = phrase.lower()
    vowel = word[0] in "aeiou"
    if word.startswith(_VOWEL_SOUND_EXCEPTIONS):
        vowel = True
    elif word.startswith(_CONSONANT_SOUND_EXCEPTIONS):
        vowel = False
    return ("an " if vowel else "a ") + phrase


def fill(template: str, context: dict, rng: random.Random) -> str:
    """Pick every [a|b] choice, then fill the {placeholders} from `context`."""
    picked = _CHOICE.sub(lambda m: rng.choice(m.group(1).split("|")), template)
    return picked.format(**context)


def tell(script: str, context: dict, rng: random.Random) -> list[str]:
    """Run a script (one beat per line, see above); returns its paragraphs."""
    paragraphs, sentences = [], []
    for line in script.strip("\n").split("\n"):
        line = line.strip()
        if not line:
            if sentences:
                paragraphs.append(" ".join(sentences))
            sentences = []
            continue
        if line.startswith("?"):
            line = line[1:].strip()
            if rng.random() < 0.5:
                continue
        text = fill(rng.choice(line.split(" || ")), context, rng)
        if text:
            sentences.append(text)
    if sentences:
        paragraphs.append(" ".join(sentences))
    return paragraphs


class Character:
    """A named character whose pronouns agree everywhere: {hero.He} ran to {hero.his} mom."""

    _PRONOUNS = {"f": ("she", "her", "her", "herself"), "m": ("he", "him", "his", "himself")}

    def __init__(self, name: str, gender: str, kind: str, trait: str = ""):
        self.name, self.gender, self.kind, self.trait = name, gender, kind, trait
        self.he, self.him, self.his, self.himself = self._PRONOUNS[gender]
        self.He, self.His = self.he.capitalize(), self.his.capitalize()

    @property
    def a_desc(self) -> str:  # "a curious little fox"
        return article(f"{self.trait} little {self.kind}" if self.trait else self.kind)

    @property
    def role(self) -> str:  # for adults: "mom", "grandpa"; {hero.his} {adult.role}
        return self.kind

    @property
    def A_desc(self) -> str:
        return self.a_desc[0].upper() + self.a_desc[1:]

    def __format__(self, spec: str) -> str:
        return self.name


@dataclass(frozen=True)
class Thing:
    """A countable thing with one adjective: {toy} red ball, {toy.a} a red ball."""

    adjective: str
    noun: str

    def __format__(self, spec: str) -> str:
        return f"{self.adjective} {self.noun}"

    @property
    def a(self) -> str:
        return article(f"{self.adjective} {self.noun}")

    @property
    def the(self) -> str:
        return f"the {self.adjective} {self.noun}"

    @property
    def The(self) -> str:
        return f"The {self.adjective} {self.noun}"


@dataclass(frozen=True)
class Place:
    """Somewhere a story happens: {place.the} the park, {place.at} in the park."""

    name: str
    preposition: str
    details: tuple

    @property
    def the(self) -> str:
        return f"the {self.name}"

    @property
    def The(self) -> str:
        return f"The {self.name}"

    @property
    def at(self) -> str:
        return f"{self.preposition} the {self.name}"


def _words(text: str) -> list[str]:
    return text.split()


def _phrases(text: str) -> list[str]:
    return [p.strip() for p in text.split(",") if p.strip()]


# --------------------------------------------------------------------------------------
# Vocabulary: names, kinds, traits, things and places.
# --------------------------------------------------------------------------------------

GIRL_NAMES = _words("""
Lily Mia Emma Ava Sophie Zoe Lucy Ella Grace Chloe Anna Ruby Rosie Daisy Molly Sara Nora
Hannah Amy Kate Lena Maya Ivy Alice Clara Julia Olivia Emily Isla Freya Poppy Millie
Evie Hazel Violet Stella Luna Bella Jenny Tina Nina Rita Megan Holly Fiona Wendy Penny
Sally Betty Dora Ellie Abby Jane Lola Mila Ada Iris Willow Rose Pearl June Eva Leah
Amber Tara Gemma Kira Lisa Maria Rosa Sofia Aisha Priya Mei Yuki Hana Amara Zara Leila
Nadia Elsa Greta Heidi Matilda Harriet Louise Nell Tilly Carmen Lucia Polly Mabel Edith
Ines Bea Cora Elena Fatima Gina Iona Jade Kim Lucie Mira Noor Olive Rina Susie Thea Uma
""")
BOY_NAMES = _words("""
Tom Ben Max Leo Sam Jack Tim Finn Noah Liam Oliver Jake Luke Ryan Adam Oscar Alfie Harry
Charlie George Henry Theo Toby Ollie Milo Hugo Felix Jasper Arthur Louis Dan Bob Ted Ned
Rex Rory Ethan Mason Lucas Owen Dylan Evan Kevin Peter Paul Simon Victor Ivan Omar Ali
Raj Ravi Kenji Hiro Chen Wei Kofi Tariq Mateo Diego Pablo Carlos Marco Luca Nico Hans Otto
Lars Sven Erik Fred Frank Gus Hank Jim Joe Joey Kit Pip Rudy Sid Walter Zack Billy Danny
Eddie Jimmy Tommy Robin Arlo Basil Cody Dexter Elliot Gabe Jonah Kai Levi Mick Nate Ozzy
Percy Quinn Rafi Seth Teddy Vince Wade Yusuf Zeke Amos Bruno Cal Dev Emil
""")
ANIMALS = _words("""
cat kitten dog puppy bunny bear fox mouse owl duck frog pig lion tiger elephant monkey
turtle squirrel hedgehog penguin deer wolf raccoon otter panda koala goat lamb pony dragon
robot dinosaur giraffe zebra badger beaver mole goose parrot hamster
""")
TRAITS = {
    "kind": "{hero.He} always tried to help others. || {hero.He} had a big, warm heart.",
    "brave": "{hero.He} was not afraid of much. || {hero.He} liked to try new things, even scary ones.",
    "shy": "{hero.He} was quiet and did not talk much to new friends. || {hero.He} often hid behind {hero.his} mom when someone new came by.",
    "curious": "{hero.He} wanted to know about everything. || {hero.He} asked a lot of questions, every single day.",
    "clever": "{hero.He} was good at solving problems. || {hero.He} could fix almost anything.",
    "silly": "{hero.He} loved to make funny faces. || {hero.He} made everyone laugh with {hero.his} jokes.",
    "cheerful": "{hero.He} was always smiling. || {hero.He} liked to sing while {hero.he} walked.",
    "grumpy": "{hero.He} did not smile very often. || Most mornings, {hero.he} woke up in a bad mood.",
    "lazy": "{hero.He} liked to sleep late and rest all day. || {hero.He} did not like hard work.",
    "helpful": "{hero.He} liked to help {hero.his} family at home. || {hero.He} was always the first to help.",
    "careful": "{hero.He} always looked both ways before crossing the road. || {hero.He} did everything slowly and carefully.",
    "proud": "{hero.He} liked to say that {hero.he} was the best at everything. || {hero.He} was very proud of {hero.his} shiny shoes.",
    "gentle": "{hero.He} was gentle with every animal {hero.he} met. || {hero.He} spoke softly and moved slowly.",
    "friendly": "{hero.He} said hello to everyone {hero.he} met. || {hero.He} had many friends.",
    "playful": "{hero.He} loved games of every kind. || {hero.He} never wanted to stop playing.",
    "honest": "{hero.He} always told the truth. || {hero.He} never told a lie, not even a small one.",
    "happy": "{hero.He} was happy almost all the time. || {hero.He} liked the sun, the rain and the wind.",
    "sleepy": "{hero.He} yawned all day long. || {hero.He} could fall asleep anywhere.",
    "stubborn": "{hero.He} did not like to change {hero.his} mind. || When {hero.he} wanted something, {hero.he} wanted it right away.",
    "polite": "{hero.He} always said please and thank you. || {hero.He} had very good manners.",
    "noisy": "{hero.He} liked to bang on pots and pans. || {hero.He} was the loudest one in {hero.his} family.",
    "patient": "{hero.He} did not mind waiting. || {hero.He} knew that good things take time.",
    "busy": "{hero.He} was always doing something. || {hero.He} never sat still for long.",
    "smart": "{hero.He} liked to read and count. || {hero.He} knew the names of all the stars.",
    "funny": "{hero.He} told the best jokes. || {hero.He} could make even a grumpy cat laugh.",
    "bossy": "{hero.He} liked to tell everyone what to do. || {hero.He} always wanted to be the leader.",
}
HOBBIES = _phrases("""
draw pictures, sing songs, read books, climb trees, jump in puddles, build sand castles,
run fast, dance, paint, bake cookies, play hide and seek, look at the stars,
collect shells, ride {hero.his} bike, fly {hero.his} kite, play with blocks, swim,
pick flowers, watch the clouds, play ball, tell stories, play the drum, make paper boats,
count the birds, dig in the garden, splash in the pond, chase butterflies, skip stones,
blow bubbles, do puzzles, play tag, jump rope, make mud pies, feed the ducks
""")
COLORS = _words("red blue green yellow pink purple orange brown white black golden silver")
SIZES = _words("big little shiny new old soft bright tiny striped spotted")
TOYS = _phrases("""
ball, kite, doll, teddy bear, toy car, toy boat, drum, yo-yo, spinning top, whistle,
toy train, puppet, toy robot, toy plane, music box, toy truck, toy rocket, wooden horse,
toy duck, rag doll, toy drum, little wagon, toy bus, toy fire truck
""")
FOODS = _phrases("""
apple, cookie, cake, pie, sandwich, carrot, banana, cupcake, muffin, orange, pear, peach,
plum, pancake, pizza, donut, pretzel, lollipop, bowl of soup, loaf of bread,
slice of cake, bunch of grapes, basket of berries, cheese roll
""")
FOOD_ADJECTIVES = _words("big warm sweet fresh tasty little yummy juicy round golden")
TREASURES = _phrases("""
shell, stone, key, coin, feather, ring, button, bottle, box, bell, map, pebble, star,
crystal, acorn, leaf, spoon, locket
""")
PLACES = [
    Place("park", "in", ("The grass was green and the birds were singing.",
                         "Children were playing on the swings.",
                         "A big tree gave cool shade by the pond.")),
    Place("forest", "in", ("Tall trees stood all around, and the air smelled of pine.",
                           "Little rays of sun came down through the leaves.",
                           "A small stream ran between the trees.")),
    Place("beach", "on", ("The waves rolled in, one after another.",
                          "The sand was warm and soft.",
                          "Seagulls flew over the blue water.")),
    Place("garden", "in", ("Red and yellow flowers grew in long rows.",
                           "Bees buzzed from flower to flower.",
                           "There was a little pond with a stone frog.")),
    Place("farm", "on", ("The cows were eating grass in the field.",
                         "A rooster stood on the fence.",
                         "The big red barn smelled of hay.")),
    Place("lake", "by", ("The water was calm and clear.",
                         "Ducks swam near the shore.",
                         "A small wooden boat was tied to the dock.")),
    Place("hill", "on", ("From the top, you could see the whole town.",
                         "The wind blew softly over the grass.",
                         "Wild flowers grew all over the slope.")),
    Place("meadow", "in", ("The meadow was full of flowers.",
                           "Butterflies danced over the tall grass.",
                           "Rabbits hopped along the edge of the field.")),
    Place("playground", "at", ("There was a tall slide and a red swing.",
                               "Kids were laughing and running around.",
                               "The sandbox was full of buckets and shovels.")),
    Place("river", "by", ("The water splashed over the round stones.",
                          "Fish jumped out of the water now and then.",
                          "An old bridge went over the river.")),
    Place("zoo", "at", ("The monkeys were swinging from rope to rope.",
                        "A big elephant sprayed water with its trunk.",
                        "Many families walked from one animal to the next.")),
    Place("library", "at", ("The shelves were full of books.",
                            "Everyone spoke in quiet voices.",
                            "A big clock ticked on the wall.")),
    Place("market", "at", ("People sold fruit, bread and flowers.",
                           "It was loud and busy and full of colors.",
                           "A man was selling warm bread from a cart.")),
    Place("pond", "by", ("Frogs sat on the green lily pads.",
                         "Dragonflies flew low over the water.",
                         "The water was so still that it looked like a mirror.")),
    Place("school", "at", ("The classroom had pictures on every wall.",
                           "The bell rang, and the children ran outside.",
                           "The teacher had a big smile and a soft voice.")),
    Place("backyard", "in", ("There was an old swing on the apple tree.",
                             "The grass was wet with dew.",
                             "A little fence went all the way around.")),
    Place("woods", "in", ("The path was covered with brown leaves.",
                          "Somewhere, an owl was hooting.",
                          "Mushrooms grew at the foot of the trees.")),
    Place("mountain", "on", ("The air was cool and fresh.",
                             "Snow sat on the very top.",
                             "A narrow path went up between the rocks.")),
    Place("village square", "in", ("An old fountain stood in the middle.",
                                   "Pigeons walked around looking for crumbs.",
                                   "The bakery on the corner smelled of fresh bread.")),
    Place("field", "in", ("The wheat was tall and golden.",
                          "A scarecrow stood in the middle of the field.",
                          "The sky above was wide and blue.")),
]
HOMES = _phrases("""
in a small house near the woods, in a yellow house on a quiet street, on a busy farm,
in a tiny village by the sea, at the edge of a big forest, in a cozy house with a red door,
in a little town between two hills, in a tall building in the city, in a house by the river,
near a park with a big pond, in a cottage with a green roof, next to an old windmill
""")
ADULTS = [("mom", "Mom", "f"), ("dad", "Dad", "m"), ("grandma", "Grandma", "f"),
          ("grandpa", "Grandpa", "m"), ("aunt", "Auntie", "f"), ("uncle", "Uncle Joe", "m")]
SMALL_ANIMALS = _words("bird kitten puppy duckling bunny squirrel hedgehog mouse frog turtle lamb chick")
SPOTS = _phrases("""
under a pile of leaves, behind a big rock, next to a sleeping dog, in a bird's nest,
under a bench, inside an old boot, in the tall grass, behind a tree, under the slide,
in a basket of apples, next to the fence, on top of a wall
""")

# --------------------------------------------------------------------------------------
# Stories: an opening, one of the plots, an ending.
# --------------------------------------------------------------------------------------

OPENING = """
Once upon a time, there was {hero.a_desc} named {hero}. || There once was {hero.a_desc} called {hero}. || Once upon a time, {hero.a_desc} named {hero} lived {home}. || Long ago, {hero.a_desc} named {hero} lived {home}. || {hero} was {hero.a_desc} who lived {home}.
{trait_line}
?{hero.He} loved to {hobby}. || Every day, {hero.he} liked to {hobby}. || {hero.His} favorite thing to do was to {hobby}.
"""

PLOTS = {
    "lost_toy": """
One [sunny|warm|bright] [morning|afternoon], {hero} took {hero.his} {toy} to {place.the}. || One day, {hero} went to {place.the} with {hero.his} {toy}.
{place_detail}
{hero.He} played with {toy.the} for a long time. || {hero.He} [played|had fun] with it all [morning|afternoon].
Then {hero.he} ran off to [look at a butterfly|drink some water|watch the ducks|pick a flower].
When {hero.he} came back, {toy.the} was gone! || But when {hero.he} turned around, {hero.his} {toy.noun} was not there anymore.

"Oh no! Where is my {toy.noun}?" {hero} cried. || {hero} looked everywhere. "My {toy.noun} is gone!" {hero.he} said sadly.
Just then, {friend} came by. || {hero.His} friend {friend} saw {hero.him} and came running.
"Don't worry. I will help you find it," said {friend}. || "What is wrong?" asked {friend}. "I lost my {toy.noun}," said {hero}. "Let's look for it together," said {friend}.
They looked [under the bushes|behind the trees|near the water|by the gate]. || They [searched|looked] high and low.
At last, {friend} found {toy.the} {spot}. || After a while, {friend} shouted, "I see it!" {toy.The} was {spot}.

"Thank you, {friend}!" said {hero}. "You are a good friend." || {hero} hugged {hero.his} {toy.noun}. "Thank you so much, {friend}," {hero.he} said.
From that day on, {hero} always kept {hero.his} {toy.noun} close. || After that, {hero} and {friend} played together every day.
""",
    "new_friend": """
One day, {hero} went to {place.the} [with {hero.his} {adult.role}|all alone]. || On a [sunny|cloudy|windy] day, {hero} walked to {place.the}.
{place_detail}
{hero.He} saw {friend.a_desc} sitting all alone. || There, {hero.he} saw {friend.a_desc} who looked sad.
{hero} felt a little shy. || {hero} did not know what to say at first.
?{hero.He} took a deep breath.

Then {hero.he} walked over and said, "Hello! My name is {hero}. What is your name?" || At last, {hero.he} said, "Hi! I am {hero}. Do you want to play with me?"
"I am {friend}," said the {friend.kind} with a small smile. || The {friend.kind} looked up. "My name is {friend}," {friend.he} said.
"I just moved here, and I don't have any friends yet." || "Nobody wants to play with me."
"You can play with me!" said {hero}. || "Now you have a friend," said {hero} with a smile.
So they decided to {hobby} together. || They played [tag|hide and seek|ball|on the swings] until the sun went down.

It was the best day {hero} had had in a long time. || {friend} laughed for the first time that day.
From that day on, {hero} and {friend} were best friends. || After that day, they met at {place.the} every [morning|afternoon].
""",
    "sharing": """
One [morning|afternoon], {hero.his} {adult.role} gave {hero.him} {food.a}. || One day, {hero} had {food.a} for lunch.
{hero} was very happy. {hero.He} could not wait to eat it. || "Yum!" said {hero}. "This is my favorite."
{hero.He} took it to {place.the} to eat. || {hero.He} sat down {place.at} to eat it.
Then {hero.he} saw {friend}. || Just then, {friend} came by.
{friend} looked hungry. || {friend.His} tummy was making a loud noise.
"I forgot my lunch at home," said {friend} sadly. || "I have nothing to eat today," {friend} said.

{hero} looked at {hero.his} {food.noun}. || {hero} did not want to give it away.
It was so [yummy|good|sweet]. But {friend} was {hero.his} friend. || {hero.He} thought for a moment.
Then {hero.he} gave half of it to {friend}. || Then {hero.he} smiled and shared it with {friend}.
"Here, you can have some," said {hero}. || "Let's share it," {hero} said.
"Thank you, {hero}!" said {friend}. "You are so kind." || {friend.His} eyes lit up. "Really? Thank you!"

They ate together and laughed. || The two friends sat side by side and ate until it was all gone.
{hero} learned that sharing makes a little thing feel like a lot. || Sharing with a friend made the {food.noun} taste even better.
""",
    "scared": """
{hero} was afraid of {fear}. || There was one thing that {hero} did not like at all: {fear}.
?Every time {hero.he} thought about it, {hero.his} knees began to shake.
One [evening|night|day], {hero.he} had to face it. || Then, one day, {hero.he} could not run away from it.
"I don't want to!" {hero.he} cried. || "I am too scared," {hero} whispered.

{hero.His} {adult.role} sat down next to {hero.him}. || {hero.His} {adult.role} gave {hero.him} a big hug.
"It is okay to be scared," said {adult}. "Everyone is scared sometimes." || "Being brave does not mean you are not scared," said {adult}.
"Let's try it together, one little step at a time." || "I will be right here with you."
{hero} held {adult.his} hand and took a small step. || {hero} took a deep breath and counted to three.
It was not as bad as {hero.he} thought. || Soon {hero.he} saw that there was nothing to fear.

"I did it!" said {hero}. || {hero} smiled a big smile. "That was not so scary after all."
{adult} was very proud of {hero.him}. || "You were so brave," said {adult}.
From then on, {hero} was not afraid of {fear} anymore. || After that, {fear} did not scare {hero} at all.
""",
    "help_animal": """
One [morning|afternoon], {hero} was walking {place.at}. || One day, {hero} went for a walk {place.at}.
{place_detail}
Suddenly, {hero.he} heard a small sound. || Then {hero.he} heard a little cry.
It was a little {animal}, and it had hurt its leg. || {hero.He} found a little {animal} with a hurt leg under a bush.
"Poor little {animal}," said {hero}. "Don't be afraid. I will help you." || "Oh no! You need help," {hero} said softly.

{hero} carefully picked it up. || {hero} gently lifted it into {hero.his} arms.
{hero.He} took it home to {hero.his} {adult.role}. || {hero.He} carried it to {hero.his} {adult.role}.
Together, they made a soft bed in a box and gave the {animal} some water. || {adult} helped {hero.him} clean the leg and wrap it.
Every day, {hero} fed the {animal} and sat with it. || {hero} took care of it for many days.

Soon the {animal} was well again. || After a week, the {animal} was strong and happy.
{hero} let it go {place.at}, and it looked back at {hero.him} as if to say thank you. || It jumped and played, and {hero} laughed.
?{hero} felt warm inside. || It felt good to help.
{hero} learned that even small animals need a friend. || From then on, the {animal} came to visit {hero} every day.
""",
    "building": """
One day, {hero} wanted to build {build}. || {hero} had a big idea: {hero.he} would build {build}.
{hero.He} worked very hard all morning. || {hero.He} worked and worked until {hero.his} hands were tired.
At last it was done. It was [big|tall|beautiful]. || Soon it was finished, and {hero.he} was very proud.
But then a big dog ran by and bumped into it, and it fell down! || But then a strong wind came, and it all fell down.

{hero} was so sad that {hero.he} wanted to cry. || "Oh no! All my work is gone," said {hero}.
{friend} saw what happened. || {friend} came over to see what was wrong.
"We can build it again, together," said {friend}. || "Don't be sad. Two friends can build it even better," {friend} said.
This time, they worked together. || So they started again, side by side.
{friend} had a good idea to make it stronger. || {hero} held it still while {friend} fixed the bottom.

Their new one was even better than before. || When it was done, it was bigger and stronger than the first one.
"We did it!" they shouted. || {hero} clapped {hero.his} hands.
{hero} learned that when you fall down, you can try again. || {hero} learned that work is easier with a friend.
""",
    "race": """
One day, {hero} and {friend} had a race to {place.the}. || {hero} and {friend} wanted to see who was the fastest.
"I will win!" said {hero}. || "Ready, set, go!" shouted {friend}.
They ran as fast as they could. || They ran and ran, past the houses and the trees.
{hero} was in front. || Soon {hero} was far ahead.
Then {hero.he} heard a cry behind {hero.him}. || Then {hero.he} looked back.
{friend} had fallen and hurt {friend.his} knee. || {friend} was sitting on the ground, and {friend.his} knee was hurt.

{hero} stopped. {hero.He} wanted to win, but {friend} needed help. || {hero} could still win the race, but {hero.he} did not want to leave {friend}.
{hero.He} ran back and helped {friend} stand up. || {hero.He} went back and gave {friend} a hand.
"Are you okay?" asked {hero}. || "Let me help you," said {hero}.
"Thank you," said {friend}. "But now you will not win." || "Why did you come back?" asked {friend}.
"It does not matter," said {hero}. "Friends are more important than races." || "Winning is no fun without you," said {hero}.

They walked to {place.the} together, slowly, side by side. || So they finished the race together, hand in hand.
?They both laughed when they got there.
{hero} learned that being kind is better than winning. || That day, both of them felt like winners.
""",
    "rainy_day": """
{hero} wanted to go to {place.the} for a picnic. || {hero} and {hero.his} {adult.role} had a plan to have a picnic {place.at}.
{hero.He} packed {food.a} and a blanket. || {hero.He} had been waiting for this day all week.
But when {hero.he} looked out the window, it was raining. || But that morning, dark clouds came, and it began to rain.
"Oh no! Now we can't go," said {hero} sadly. || {hero} pressed {hero.his} nose to the window and sighed.

"Don't be sad," said {adult}. "We can have a picnic inside!" || {adult} smiled. "I have an idea," {adult.he} said.
They put the blanket on the floor of the living room. || They made a little tent out of chairs and blankets.
They ate {food.the} and told stories. || {hero} and {adult} ate and played games all afternoon.
?They even pretended that the rug was green grass.

Later, the rain stopped, and a big rainbow came out. || In the evening, the sun came back, and there was a rainbow in the sky.
"Look!" said {hero}. "A rainbow!" || {hero} pointed at the sky. "It is so pretty!"
It was not the day {hero} had planned, but it was a very good day. || {hero} learned that a rainy day can still be a happy day.
""",
    "broken_toy": """
{hero} had {toy.a} that {hero.he} loved very much. || {hero.His} favorite toy was {toy.a}.
One day, {friend} came over to play. || One afternoon, {friend} came to play {place.at}.
{friend} wanted to play with {toy.the}. || "Can I play with your {toy.noun}?" asked {friend}.
But {friend} dropped it, and it broke! || But it fell on the ground and broke into pieces.

"You broke it!" {hero} shouted. "Go away!" || {hero} was very angry. {hero.He} stomped {hero.his} feet.
{friend} started to cry. "I am sorry. I did not mean to." || {friend} looked down. "I am so sorry," {friend.he} said.
{hero.His} {adult.role} came to see what was wrong. || Then {hero.his} {adult.role} came in.
"Accidents happen," said {adult}. "Maybe we can fix it together." || "Let's see if we can fix it," said {adult} kindly.
They used some glue and a little tape. || Together, they put all the pieces back in place.

Soon {toy.the} looked almost new. || In the end, {toy.the} was as good as new.
{hero} looked at {friend}. "I am sorry I shouted," {hero.he} said. || "I am sorry I was angry," said {hero}.
"It's okay," said {friend}, and they hugged. || {friend} smiled, and they were friends again.
{hero} learned that friends are more important than toys. || From then on, they played with {toy.the} together, very carefully.
""",
    "baking": """
One day, {hero} and {hero.his} {adult.role} decided to bake a cake for {friend}. || It was {friend}'s birthday, so {hero} and {hero.his} {adult.role} wanted to bake a cake.
They put on their aprons and got out a big bowl. || {adult} got the flour, the eggs and the sugar.
{hero} mixed the flour and the eggs. || {hero} helped pour the milk into the bowl.
But {hero} put in salt instead of sugar! || But by mistake, {hero.he} dropped the whole bag of flour on the floor. There was flour everywhere!

"Oh no!" said {hero}. "I ruined it!" || {hero} felt like crying.
{adult} laughed. "That is okay. We can start again." || "Everyone makes mistakes," said {adult}. "Let's try one more time."
This time, {hero} was very careful. || The second time, {hero.he} read every step twice.
The cake went into the oven, and soon the whole house smelled sweet. || Soon a big, warm cake came out of the oven.
They put {color} icing on top. || {hero} put little candles on top.

When {friend} saw the cake, {friend.he} jumped for joy. || {friend} was so happy. "Did you make this for me?" {friend.he} asked.
"Yes, I made it myself," said {hero}, "with a little help." || "It was hard, but I did it," said {hero} proudly.
They ate the cake together, and it was delicious. || It was the best cake {friend} had ever eaten.
""",
    "garden": """
One spring day, {hero.his} {adult.role} gave {hero} a little seed. || {hero} found a small seed {place.at} and showed it to {hero.his} {adult.role}.
"If you plant it and take care of it, it will grow," said {adult}. || "What will it be?" asked {hero}. "You will have to wait and see," said {adult}.
{hero} planted the seed in a pot of soil. || {hero} dug a small hole in the garden and put the seed in it.
Every day, {hero.he} watered it and waited. || Every morning, {hero.he} gave it water and looked at it.
But nothing happened. || Days went by, and still there was nothing.
"Why won't it grow?" asked {hero}. || {hero} was getting tired of waiting.

"Be patient," said {adult}. "Good things take time." || "Seeds need time, water and sun," said {adult} with a smile.
So {hero} kept watering it. || {hero} did not give up.
One morning, {hero} saw a tiny green leaf! || Then one day, a little green sprout came out of the soil.
It grew taller and taller. || Week after week, the little plant grew.

At last, it became a big {color} flower. || In the summer, it was a tall sunflower, taller than {hero}!
{hero} was so proud. || {hero} showed it to everyone {hero.he} knew.
{hero} learned that waiting is hard, but it is worth it. || From then on, {hero} loved to help plants grow.
""",
    "lost_way": """
One day, {hero} went to {place.the} with {hero.his} {adult.role}. || One [morning|afternoon], {hero} and {hero.his} {adult.role} went to {place.the}.
{place_detail}
{hero} saw a pretty butterfly and followed it. || {hero} saw a little {animal} and ran after it.
{hero.He} went farther and farther. || {hero.He} did not look where {hero.he} was going.
When {hero.he} looked up, {hero.his} {adult.role} was gone. || Soon {hero.he} did not know where {hero.he} was.

"{adult}! Where are you?" {hero} called. || {hero} was lost. {hero.He} felt very scared.
Then {hero.he} remembered what {adult} had said: "If you get lost, stay where you are." || {hero.He} sat down and tried not to cry.
{friend.A_desc} named {friend} came by. || Soon {friend}, {friend.a_desc}, saw {hero.him}.
"Are you lost?" asked {friend}. "I will help you." || "Why are you sad?" asked {friend}. "I can't find my {adult.role}," said {hero}.
They walked back together and called out, "{adult}!" || {friend} knew the way back, so they walked together.

Soon {hero} saw {hero.his} {adult.role} running to {hero.him}. || At last, {hero.he} heard a voice call, "{hero}!" It was {adult}.
{adult} gave {hero.him} a big hug. || {hero} ran into {adult.his} arms.
"Thank you for helping {hero}," said {adult} to {friend}. || {hero} thanked {friend} again and again.
{hero} learned to always stay close. || After that day, {hero} never wandered away again.
""",
    "surprise": """
It was almost {friend}'s birthday. || Tomorrow was {friend}'s birthday.
{hero} wanted to make a surprise for {friend.him}. || {hero} had a secret plan.
{hero.He} made a card with a big {color} heart on it. || {hero.He} drew a picture of the two of them {place.at}.
?{hero.He} asked {hero.his} {adult.role} to help {hero.him} bake a cake.
Then {hero.he} asked all their friends to come to {place.the}. || {hero.He} told all their friends to hide {place.at}.

When {friend} came, everyone jumped out and shouted, "Surprise!" || When {friend} walked in, everyone shouted, "Happy birthday!"
{friend} was so surprised that {friend.he} almost fell over. || {friend} laughed and clapped {friend.his} hands.
"Did you do all this for me?" asked {friend}. || "This is the best surprise ever!" said {friend}.
"Yes, because you are my best friend," said {hero}. || {hero} smiled. "Happy birthday, {friend}!"

They [played games|sang songs|danced] all afternoon. || They ate, played and laughed until the sun went down.
It was the best birthday {friend} ever had. || {hero} felt happy, because making a friend happy feels good.
""",
    "honesty": """
One day, {hero} was playing ball in the house. || {hero} was running around in the kitchen.
{hero.His} {adult.role} had said, "No ball games inside!" || {hero} knew that it was not allowed.
Then, crash! {hero.He} broke {adult.his} favorite vase. || Then {hero.he} knocked over a big blue vase, and it broke.
{hero} was scared. {hero.He} hid the pieces under the sofa. || {hero} did not want to get in trouble, so {hero.he} ran to {hero.his} room.

Later, {adult} asked, "Do you know what happened to my vase?" || When {adult} saw the broken vase, {adult.he} asked, "Who did this?"
{hero} felt a knot in {hero.his} tummy. || {hero} did not want to say anything.
But {hero.he} knew that lying was wrong. || But {hero.he} felt bad inside.
"It was me," said {hero} quietly. "I am sorry. I was playing inside." || {hero} looked down. "I broke it," {hero.he} said. "I am sorry."

{adult} was quiet for a moment. || {adult} knelt down next to {hero.him}.
"Thank you for telling me the truth," said {adult}. || "I am sad about the vase, but I am proud of you for being honest," said {adult}.
Together, they cleaned up the pieces. || They gave each other a hug.
{hero} learned that telling the truth is always best. || {hero} felt much better after that.
""",
    "learn_skill": """
{hero} wanted to learn to {skill}. || More than anything, {hero} wanted to {skill}.
All {hero.his} friends could do it, but {hero} could not. || {hero.His} friend {friend} could do it very well.
The first time {hero.he} tried, it went all wrong. || On the first try, it did not work at all.
The second time, it went wrong again. || {hero.He} tried again and again, but it was too hard.
"I will never learn!" said {hero}. || {hero} sat down and felt sad.

{friend} sat down next to {hero.him}. || Then {friend} came over.
"Don't give up," said {friend}. "I fell a lot when I started too." || "Let me show you a trick," said {friend}.
{friend} showed {hero} how to do it, slowly. || {friend} helped {hero} every day after school.
{hero} practiced every day. || Day after day, {hero} kept trying.
?Some days were hard, but {hero.he} did not stop.

Then one day, {hero.he} did it! || At last, {hero} could {skill}!
"I can do it!" {hero} shouted. "Look at me!" || {hero} laughed with joy.
{friend} cheered for {hero.him}. || {friend} clapped and cheered.
{hero} learned that practice helps you get better. || {hero} was so glad that {hero.he} had not given up.
""",
    "treasure": """
One rainy day, {hero} found an old map in {hero.his} {adult.role}'s attic. || {hero} found a strange old map inside a book.
There was a big red X on it, near {place.the}. || The map showed a path to {place.the} and a big X.
"A treasure map!" said {hero}. || "Maybe there is treasure!" {hero} said.
{hero.He} ran to tell {friend}. || {hero.He} showed the map to {friend}.

The next day, they followed the map to {place.the}. || So {hero} and {friend} set off with a shovel.
{place_detail}
They walked past a big tree and counted ten steps. || They followed the path on the map, step by step.
Then they started to dig. || They dug and dug in the soft ground.
At last, the shovel hit a small wooden box. || Then they found an old wooden box.

Inside the box, there was {treasure.a} and a little note. || They opened it and found {treasure.a}.
?The note said, "The best treasure is a good friend."
{hero} and {friend} smiled at each other. || "We found the treasure together!" said {friend}.
They kept {treasure.the} as a sign of their friendship. || They put {treasure.the} on a shelf where they could both see it.
""",
    "stuck": """
One windy day, {hero} was playing with {hero.his} {flyer} {place.at}. || {hero} and {friend} were playing with a {flyer} {place.at}.
Suddenly, it flew up and got stuck in a tall tree. || Then the wind took it, and it landed high up in a tree.
{hero} jumped, but {hero.he} could not reach it. || {hero} tried to climb, but the tree was too tall.
"What can we do?" asked {hero}. || {hero} felt sad. "It is too high," {hero.he} said.

{friend} had an idea. || Then {friend} said, "I know what to do!"
["Let's ask {adult} for help," said {friend}.|"We can use a long stick," said {friend}.]
?They tried and tried.
Together, they got the {flyer} down. || With a little help, the {flyer} came down at last.
"Hooray!" they shouted. || {hero} hugged {friend}. "Thank you!"
They played with it again, far away from the tree this time. || After that, they were careful to play far from the trees.
""",
    "snow_day": """
One winter morning, {hero} woke up and saw snow everywhere. || When {hero} looked outside one cold morning, everything was white.
"Snow!" {hero} shouted and jumped out of bed. || {hero} put on {hero.his} warm coat, {hero.his} hat and {hero.his} boots.
{hero.He} went outside with {friend}. || {hero.He} ran out to play with {friend}.
They made a big snowman in front of the house. || They rolled three big snowballs to make a snowman.
{hero} gave it a carrot nose, and {friend} gave it an old {color} hat. || They used stones for its eyes and put an old hat on its head.

Then a big gust of wind blew the hat away! || But the wind took the snowman's hat!
They ran after it, laughing. || They chased it all the way down the hill.
At last, {friend} caught it. || It landed in a pile of snow, and {hero} picked it up.
They put it back on the snowman. || "There you go, Mr. Snowman," said {hero}.

When their hands got cold, they went inside. || Later, {hero.his} {adult.role} made them hot cocoa.
"This was the best snow day ever," said {friend}. || They sat by the window and looked at their snowman.
""",
    "grumpy_neighbor": """
Next to {hero.his} house lived an old [man|woman] who never smiled. || {hero} had a neighbor who was always grumpy.
Everyone was a little afraid of the old neighbor. || The kids said that the neighbor did not like children.
One day, {hero.his} {toy.noun} went over the fence into the neighbor's garden. || One day, {hero} threw {hero.his} {toy.noun} too far, and it landed in the neighbor's yard.
{hero} was scared to knock on the door. || "Oh no," said {hero}. "Now what?"

At last, {hero.he} knocked. The door opened slowly. || {hero} took a deep breath and rang the bell.
"I am sorry, but my {toy.noun} is in your garden," said {hero}. || "Can I please have my {toy.noun} back?" asked {hero} politely.
The neighbor looked at {hero.him} for a long time. || The neighbor did not say anything at first.
Then the neighbor smiled. "Of course. Would you like some cookies too?" || Then the neighbor laughed. "Nobody ever comes to visit me," the neighbor said.

They sat in the garden and ate cookies together. || The neighbor gave {hero} {toy.the} and a glass of lemonade.
The neighbor was not grumpy at all, just lonely. || {hero} found out that the neighbor was kind after all.
After that, {hero} visited every week. || {hero} learned not to judge someone before you know them.
""",
    "wish": """
One night, {hero} looked out of {hero.his} window at the sky. || One clear night, {hero} saw a shooting star.
"I wish I had a friend to play with," {hero.he} whispered. || {hero} closed {hero.his} eyes and made a wish.
Then {hero.he} went to sleep. || {hero.He} fell asleep with a smile on {hero.his} face.

The next morning, {hero.he} went to {place.the}. || In the morning, {hero} walked to {place.the} as usual.
{place_detail}
There, {hero.he} met {friend.a_desc} named {friend}. || There, {friend} was sitting on a bench, looking lonely.
"Do you want to play?" asked {friend}. || "Hi, I am new here," said {friend}.
{hero} smiled. "Yes! Let's play!" || They played all day and laughed a lot.

That night, {hero} looked up at the stars again. || That night, {hero} said thank you to the star.
"My wish came true," {hero.he} said. || {hero} knew that {hero.he} had found a real friend.
""",
    "greedy": """
One day, {hero} found a big bush full of sweet berries {place.at}. || {hero.His} {adult.role} put a big plate of cookies on the table.
"They are all mine!" said {hero}. || {hero} wanted to eat them all.
{friend} came by. "Can I have some?" {friend.he} asked. || "Can I have one?" asked {friend}.
"No!" said {hero}. "They are all for me." || But {hero} said, "No, I want all of them."
{hero} ate and ate and ate. || {hero} ate every single one.

Soon {hero.his} tummy began to hurt. || After a while, {hero} had a bad tummy ache.
"Ouch," said {hero}. "I ate too much." || {hero} lay down and felt terrible.
{friend} brought {hero.him} a glass of water. || {friend} sat next to {hero.him} and was kind to {hero.him} anyway.
{hero} felt bad for not sharing. || {hero} felt sorry.
"I am sorry, {friend}," said {hero}. "Next time, I will share with you." || "Thank you for being kind to me, even when I was not kind to you," said {hero}.

The next day, {hero} shared {hero.his} {food.noun} with {friend}. || From then on, {hero} always shared.
{hero} learned that it is better to share than to take everything. || It felt much better than a tummy ache.
""",
    "dragon": """
Far away, on a tall mountain, there lived a little dragon named {friend}. || In a cave near {place.the}, there lived a small dragon called {friend}.
Everyone was afraid of {friend}, because dragons breathe fire. || But the dragon was sad, because nobody wanted to be {friend.his} friend.
One day, {hero} walked up to the cave. || One day, {hero} got lost and came to the dragon's cave.
"Please don't hurt me," said {hero}. || {hero} was scared, but {hero.he} said hello.
"I won't hurt you," said {friend}. "I just want a friend." || The dragon smiled. "Hello! Nobody ever talks to me."

They talked and played all afternoon. || {hero} and {friend} became friends.
That night, it got very cold. || When the sun went down, it grew dark and cold.
The people in the village had no fire to keep warm. || The village lamps had all gone out.
{friend} flew down and lit a big, warm fire for everyone. || {friend} used {friend.his} fire to light all the lamps in the village.

Now everyone could see that {friend} was kind. || The people cheered for the little dragon.
"Thank you, {friend}!" they said. || After that, nobody was afraid of {friend} anymore.
{hero} learned that you should not judge someone by how they look. || {friend} had many friends from that day on.
""",
    "sick_friend": """
One day, {friend} did not come to {place.the}. || {hero} waited for {friend}, but {friend} did not come to play.
{hero.His} {adult.role} said that {friend} was sick in bed. || {hero} learned that {friend} had a cold and had to stay home.
{hero} wanted to make {friend} feel better. || "How can I help?" {hero} asked.
{hero.He} drew a picture of {friend} and {hero.himself} {place.at}. || {hero.He} made a card that said, "Get well soon!"
?{hero.His} {adult.role} helped {hero.him} make a warm bowl of soup.

Then {hero.he} went to {friend}'s house and knocked on the door. || They walked to {friend}'s house together.
{friend} was in bed, but {friend.he} smiled when {friend.he} saw {hero}. || {friend} looked tired, but {friend.his} face lit up.
"This is for you," said {hero}. || "I made this for you," said {hero}, and gave {friend.him} the card.
"Thank you! I feel better already," said {friend}. || {friend} laughed. "You are the best friend ever."

A few days later, {friend} was well again. || Soon {friend} was well, and they played {place.at} again.
{hero} learned that a little kindness can make someone's day. || Being a good friend made {hero} happy too.
""",
    "new_pet": """
One day, {hero.his} {adult.role} came home with a box. || For {hero.his} birthday, {hero} got a big box with holes in the lid.
Inside the box was a little {animal}! || {hero} opened it, and a tiny {animal} looked up at {hero.him}.
"Is it for me?" asked {hero}. || {hero} jumped up and down with joy.
"Yes, but you must take good care of it," said {adult}. || "A pet is a big job," said {adult}. "Can you do it?"
"I will!" said {hero}. "I will call it {pet_name}." || {hero} named it {pet_name}.

Every day, {hero} gave {pet_name} food and fresh water. || {hero} fed {pet_name} every morning and played with it every afternoon.
One day, {hero} forgot to close the door, and {pet_name} ran away! || But one morning, {pet_name} was not in its bed.
{hero} looked all over the house. || {hero} and {friend} looked {place.at} and all along the street.
At last, they found {pet_name} {spot}. || Then {hero} heard a little sound. {pet_name} was {spot}!

{hero} held {pet_name} close. "I am sorry. I will be more careful," {hero.he} said. || {hero} hugged {pet_name} and did not let go for a long time.
From then on, {hero} always closed the door. || {hero} learned that a pet needs care every single day.
""",
    "trip": """
One summer day, {hero} and {hero.his} {adult.role} went on a trip to the sea. || One hot day, {hero.his} {adult.role} took {hero} and {friend} to the beach.
The waves were big and the sand was warm. || Seagulls flew over the blue water.
{hero} built a castle and looked for shells. || They swam, dug in the sand and looked for crabs.
Then they sat down to eat their sandwiches. || At lunch time, {adult} gave everyone a sandwich.
Suddenly, a big seagull flew down and took {hero.his} sandwich! || But then a seagull came down and grabbed {hero.his} lunch right out of {hero.his} hand!

"Hey! That is mine!" {hero} shouted. || {hero} was so surprised that {hero.he} fell back into the sand.
The seagull flew away with it. || The bird flew off over the water.
For a moment, {hero} was angry. || {hero} did not know whether to laugh or cry.
Then {hero.he} started to laugh. || Then everyone began to laugh, and {hero} laughed too.
"I think the seagull was very hungry," said {adult}. || {adult} shared {adult.his} sandwich with {hero}.

It was a funny day that they talked about for a long time. || On the way home, {hero} said, "Next time, I will hold my sandwich tight!"
""",
    "first_day": """
It was {hero}'s first day at a new school. || Today, {hero} was going to a new school for the first time.
{hero.He} felt nervous. What if nobody liked {hero.him}? || {hero.His} tummy felt funny, and {hero.he} did not want to go.
"Everything will be fine," said {hero.his} {adult.role}. || {hero.His} {adult.role} gave {hero.him} a hug at the gate.
In the classroom, {hero} sat down at a desk by the window. || {hero} walked in slowly and sat in the back.
Nobody talked to {hero.him} all morning. || {hero} looked at the other children, but {hero.he} did not say a word.

At lunch, {friend} sat down next to {hero.him}. || At playtime, {friend} came over.
"I like your {toy.noun}," said {friend}. || "Do you like to {hobby}?" asked {friend}.
{hero} smiled. "Yes! It is my favorite thing!" || "Me too!" said {hero} with a big smile.
They talked and laughed until the bell rang. || Soon they were playing together like old friends.

When {hero.his} {adult.role} came, {hero} ran to {adult.him}. || After school, {hero} told {adult} all about {friend}.
"I made a friend!" {hero} said. || "Can I go back tomorrow?" asked {hero}.
{hero} was not afraid of the new school anymore. || The new school was not so scary after all.
""",
    "storm": """
One evening, a big storm came. || One night, the wind began to blow very hard.
The rain hit the windows, and thunder roared. || Lightning flashed across the dark sky.
Then the lights went out! || Suddenly, the whole house went dark.
{hero} heard a small sound at the door. || Then {hero.he} heard something scratching at the door.

{hero} and {hero.his} {adult.role} opened the door carefully. || {hero} took a flashlight and went to look.
It was a wet little {animal}, shaking with cold. || There was a little {animal} on the step, all wet and scared.
"Come in, little one," said {hero}. || "You can stay with us tonight," said {hero} softly.
They dried it with a towel and gave it some warm milk. || {adult} found an old blanket, and {hero} made a soft bed by the fire.
Soon the {animal} stopped shaking and fell asleep. || The little {animal} curled up and closed its eyes.

In the morning, the storm was gone and the sun was shining. || The next day, the sky was blue again.
{hero} let the {animal} go, and it ran happily into the garden. || The {animal} stayed for breakfast and then went home.
{hero} was glad that {hero.he} had helped. || A storm can be scary, but helping someone made {hero} feel brave.
""",
    "boast": """
{hero} liked to say that {hero.he} was the best at everything. || "I can jump higher than anyone!" {hero} liked to say.
One day, there was a contest {place.at}. || One day, all the friends met {place.at} for a jumping contest.
"I will win for sure," said {hero}. "I don't need to practice." || {hero} did not practice, because {hero.he} was sure {hero.he} would win.
{friend} practiced every day. || {friend} was quiet, but {friend.he} practiced very hard.

On the day of the contest, {hero} went first. || When it was {hero.his} turn, {hero} ran and jumped.
But {hero.he} tripped and fell in the mud! || But {hero.he} did not jump very high at all.
Everyone was quiet. {hero.His} face turned red. || {hero} felt very silly.
Then {friend} jumped, and {friend.he} jumped the highest of all. || {friend} won the contest.

{friend} helped {hero} up and said, "Good try." || {friend} was not proud. {friend.He} said, "You can do it next time."
"You are a good friend," said {hero}. "I am sorry I was so proud." || {hero} said, "Can you show me how you practice?"
{hero} learned that bragging does not help you win. || From then on, {hero} practiced instead of boasting.
""",
}
PLOT_VALUES = {  # extra context some plots use, drawn from these lists
    "fear": _phrases("""the dark, thunder, the big dog next door, deep water, the vacuum cleaner,
        going down the tall slide, the doctor, the first day of school, spiders, loud noises"""),
    "build": _phrases("""a sand castle, a tower of blocks, a tree house, a snowman, a paper boat,
        a house of cards, a fort of pillows, a bridge of sticks"""),
    "skill": _phrases("""ride a bike, swim, whistle, tie {hero.his} shoes, read, jump rope,
        skate, climb the big tree, catch a ball, play the drum"""),
    "flyer": _phrases("kite, balloon, ball, paper plane, frisbee, toy plane"),
    "pet_name": _words("Fluffy Spot Patch Button Biscuit Pepper Sunny Bubbles Coco Ziggy Nibbles Pip Snowy Whiskers Peanut"),
}
ENDINGS = """
?The end. || And that was the end of a very good day. || {hero} smiled and went to sleep happy that night.
"""


def _character(rng: random.Random, avoid: tuple = (), kinds: list = ANIMALS) -> Character:
    while True:
        gender = rng.choice(("f", "m"))
        name = rng.choice(GIRL_NAMES if gender == "f" else BOY_NAMES)
        if name not in avoid:
            break
    if rng.random() < 0.55:
        kind = "girl" if gender == "f" else "boy"
    else:
        kind = rng.choice(kinds)
    return Character(name, gender, kind, rng.choice(list(TRAITS)))


def story_context(rng: random.Random) -> dict:
    """Everything a story can mention, chosen once so that it stays consistent."""
    hero = _character(rng)
    friend = _character(rng, avoid=(hero.name,))
    role, name, gender = rng.choice(ADULTS)
    place = rng.choice(PLACES)
    context = {
        "hero": hero, "friend": friend, "adult": Character(name, gender, role),
        "place": place, "home": rng.choice(HOMES),
        "toy": Thing(rng.choice(COLORS + SIZES), rng.choice(TOYS)),
        "food": Thing(rng.choice(FOOD_ADJECTIVES), rng.choice(FOODS)),
        "treasure": Thing(rng.choice(COLORS + SIZES), rng.choice(TREASURES)),
        "animal": rng.choice(SMALL_ANIMALS), "color": rng.choice(COLORS),
        "spot": rng.choice(SPOTS),
    }
    for key, values in PLOT_VALUES.items():
        context[key] = fill(rng.choice(values), context, rng)
    context["hobby"] = fill(rng.choice(HOBBIES), context, rng)
    context["trait_line"] = fill(rng.choice(TRAITS[hero.trait].split(" || ")), context, rng)
    context["place_detail"] = rng.choice(place.details)
    return context


def story(rng: random.Random, plot: str | None = None, min_words=80, max_words=250) -> str:
    """One short story, 80-250 words: an opening, a plot (random unless named), an ending."""
    return _story(rng, plot, min_words, max_words)[0]


def _story(rng, plot, min_words, max_words) -> tuple[str, dict]:
    while True:
        context = story_context(rng)
        name = plot or rng.choice(list(PLOTS))
        opening = tell(OPENING, context, rng)
        middle = tell(PLOTS[name], context, rng)
        ending = tell(ENDINGS, context, rng)
        paragraphs = [" ".join(opening + middle[:1])] + middle[1:]
        if ending:
            paragraphs[-1] += " " + ending[0]
        text = "\n\n".join(paragraphs)
        if min_words <= len(text.split()) <= max_words:
            return text, context


FILLER = """
{place_detail} || The sky was [blue|gray|clear|cloudy] that day. || {hero} walked slowly to {place.the}. || {hero} had {toy.a} and {food.a}. || {hero.His} {adult.role} was busy in the kitchen. || A {animal} sat quietly by the road. || The wind moved the leaves of the trees. || {hero} and {friend} talked about {fear}. || It was a [quiet|long|warm|cold] [morning|afternoon|evening]. || {friend} liked to {hobby}. || Somewhere, a bell was ringing. || {hero} counted the clouds in the sky.
"""


def filler_sentence(rng: random.Random) -> str:
    """One plain sentence from the story grammar (the haystack of the passkey documents)."""
    return tell(FILLER, story_context(rng), rng)[0]
