"""The procedural world's vocabulary: actions, environments, character looks and their phrases.

Everything the world can render, parse or caption is named here once. Names are plain lowercase
words ("brush hair"), as in the real HMDB-51 label list. Each entry carries the phrases (synonyms,
inflections) that the prompt parser understands, and each action its *stereotype*: the
environment and character a text-to-video model falls back to when a prompt does not say (the
"Caucasian woman with long brown hair" the paper saw for Basic "brush hair" prompts).

Three class lists play the roles of the paper's datasets (``WORLD_CLASS_LISTS``): ``world_k400``
(the source, Kinetics-400's role) and the targets ``world_hmdb`` and ``world_ucf``. The targets
overlap the source partly, and some of their classes are absent from it, as in the real setting.
"""

from __future__ import annotations

from dataclasses import dataclass

# --------------------------------------------------------------------------------------------
# Colours (RGB in [0, 1]); the parser maps colour words onto these names.
# --------------------------------------------------------------------------------------------

COLORS: dict[str, tuple[float, float, float]] = {
    "red": (0.85, 0.12, 0.12),
    "blue": (0.15, 0.30, 0.85),
    "green": (0.12, 0.62, 0.20),
    "yellow": (0.95, 0.85, 0.10),
    "orange": (0.98, 0.50, 0.08),
    "purple": (0.55, 0.18, 0.75),
    "pink": (0.98, 0.55, 0.72),
    "black": (0.08, 0.08, 0.09),
    "white": (0.95, 0.95, 0.95),
    "grey": (0.55, 0.55, 0.57),
    "brown": (0.48, 0.29, 0.12),
    "olive": (0.40, 0.45, 0.18),
    "khaki": (0.76, 0.69, 0.48),
    "navy": (0.08, 0.12, 0.40),
    "teal": (0.05, 0.55, 0.55),
    "blonde": (0.93, 0.80, 0.45),
}

# Synonyms of colour words (after lowercasing); "gray" is the American spelling.
COLOR_SYNONYMS: dict[str, str] = {
    "gray": "grey", "silver": "grey", "crimson": "red", "scarlet": "red", "maroon": "red",
    "violet": "purple", "lilac": "purple", "golden": "yellow", "gold": "yellow", "beige": "khaki",
    "tan": "khaki", "turquoise": "teal", "cyan": "teal", "lime": "green", "emerald": "green",
    "blond": "blonde", "fair": "blonde", "auburn": "brown", "ginger": "orange", "silvery": "grey",
}

SKIN_TONES: dict[str, tuple[float, float, float]] = {
    "light": (0.96, 0.80, 0.68),
    "tan": (0.84, 0.63, 0.45),
    "brown": (0.60, 0.40, 0.25),
    "dark": (0.36, 0.23, 0.14),
}

BUILDS = ("thin", "normal", "heavy")
CHILD_HEIGHT = 0.74  # relative body size of a child


@dataclass(frozen=True)
class Character:
    """A character look: everything the renderer needs to draw a person."""

    skin: str = "light"
    top: str = "white"
    bottom: str = "blue"
    bottom_kind: str = "pants"
    hair: str = "brown"
    hair_style: str = "short"
    height: float = 1.0  # relative body size; a child is ~0.72
    build: str = "normal"
    accessory: str = "none"
    accessory_color: str = "black"
    child: bool = False
    elderly: bool = False


@dataclass(frozen=True)
class CharacterLook:
    """A named character preset with the phrases that select it."""

    name: str
    description: str  # canonical text, readable back by the parser
    look: Character
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Environment:
    """A scene: background colours, floor, lighting and props (drawn by render.py)."""

    name: str
    description: str
    wall_top: str  # colour names or raw RGB via ENV_RGB
    wall_bottom: str
    floor: str
    horizon: float  # world y of the floor/wall boundary (the figure stands at y=0)
    lighting: str
    props: tuple[str, ...]
    phrases: tuple[str, ...]


@dataclass(frozen=True)
class Action:
    """An action class: its motion (render.py), prop, phrases, and the generator's stereotype."""

    name: str
    phrases: tuple[str, ...]  # strong phrases: naming one of these means this action
    weak: tuple[str, ...] = ()  # generic words that also describe other scenes (standing, sitting)
    gerund: str = ""  # "brushing hair": used by captions and descriptions
    description: str = ""  # one-sentence visual description (what a prompt writer would say)
    stereotype_env: str = "park"
    stereotype_character: str = "tall man in a red shirt"
    typical_envs: tuple[str, ...] = ()  # where the action usually happens (IE's environments)
    hard_pair: str | None = None  # the deliberately similar class, documentation and tests

    @property
    def folder(self) -> str:
        return self.name.replace(" ", "_")


# --------------------------------------------------------------------------------------------
# Environments
# --------------------------------------------------------------------------------------------

# Extra RGB values for scene colours that are not clothing colours.
ENV_RGB: dict[str, tuple[float, float, float]] = {
    "sky": (0.55, 0.75, 0.95),
    "pale sky": (0.80, 0.90, 0.98),
    "sand": (0.90, 0.80, 0.55),
    "grass": (0.30, 0.62, 0.25),
    "dark grass": (0.16, 0.40, 0.14),
    "wood": (0.70, 0.50, 0.30),
    "light wood": (0.85, 0.68, 0.45),
    "tile": (0.85, 0.88, 0.90),
    "cream": (0.95, 0.92, 0.80),
    "concrete": (0.55, 0.55, 0.55),
    "asphalt": (0.30, 0.30, 0.32),
    "snow": (0.96, 0.97, 1.00),
    "water": (0.15, 0.55, 0.85),
    "curtain": (0.55, 0.05, 0.10),
    "stage floor": (0.20, 0.15, 0.12),
    "mint": (0.75, 0.92, 0.85),
    "peach": (0.98, 0.82, 0.70),
    "lavender": (0.80, 0.75, 0.92),
    "desert sky": (0.98, 0.85, 0.60),
    "dune": (0.88, 0.65, 0.35),
    "rubber": (0.35, 0.32, 0.40),
    "paper": (0.94, 0.92, 0.84),
    "tatami": (0.80, 0.78, 0.50),
    "forest": (0.22, 0.42, 0.22),
    "court": (0.82, 0.52, 0.28),
    "office wall": (0.78, 0.80, 0.84),
    "carpet": (0.45, 0.40, 0.55),
}

ENVIRONMENTS: tuple[Environment, ...] = (
    Environment("gym", "in a gym with weight racks and large windows", "office wall", "cream", "rubber",
                0.55, "bright", ("window", "rack"),
                ("gym", "fitness center", "fitness centre", "weight room", "health club", "workout room",
                 "training room", "weight rack", "dumbbell")),
    Environment("beach", "on a sandy beach by the sea", "sky", "pale sky", "sand", 0.45, "sunny",
                ("sea", "sun"), ("beach", "seaside", "shore", "seashore", "sea", "ocean", "sandy", "sand",
                                 "coast")),
    Environment("forest", "in a green forest among tall trees", "forest", "dark grass", "dark grass", 0.35,
                "dim", ("trees",), ("forest", "woods", "woodland", "jungle", "tree", "trail")),
    Environment("kitchen", "in a kitchen with cabinets and a counter", "cream", "peach", "tile", 0.50,
                "warm", ("cabinets", "counter"), ("kitchen", "counter", "cabinet", "stove")),
    Environment("bathroom", "in a bathroom with tiled walls and a mirror", "tile", "mint", "tile", 0.40,
                "bright", ("tiles", "mirror"), ("bathroom", "tiled", "tile", "mirror", "sink",
                                                 "washroom", "restroom")),
    Environment("office", "in an office with a desk and a window", "office wall", "office wall", "carpet",
                0.50, "fluorescent", ("window", "desk"), ("office", "desk", "workplace", "cubicle",
                                                          "meeting room")),
    Environment("city street", "on a city street between buildings", "sky", "pale sky", "asphalt", 0.30,
                "day", ("buildings", "lamp"), ("street", "city", "sidewalk", "pavement", "downtown",
                                               "road", "urban", "alley", "crosswalk")),
    Environment("park", "in a park on the grass", "sky", "pale sky", "grass", 0.40, "sunny",
                ("trees", "bench"), ("park", "lawn", "grass", "grassy", "meadow", "garden", "field",
                                     "backyard")),
    Environment("snowfield", "in a snowy field in winter", "pale sky", "snow", "snow", 0.40, "bright",
                ("snowflakes",), ("snow", "snowy", "winter", "snowfield", "ice", "icy", "frozen")),
    Environment("stage", "on a stage under a spotlight with red curtains", "curtain", "curtain",
                "stage floor", 0.35, "spotlight", ("spotlight", "curtain"),
                ("stage", "theater", "theatre", "concert", "auditorium", "performance hall", "studio")),
    Environment("bedroom", "in a bedroom with a bed and a lamp", "lavender", "lavender", "carpet", 0.50,
                "warm", ("bed", "window"), ("bedroom", "bed", "dorm", "dormitory")),
    Environment("swimming pool", "at a swimming pool with blue water", "pale sky", "tile", "water", 0.35,
                "bright", ("lanes",), ("swimming pool", "pool", "poolside", "water", "lane",
                                       "natatorium")),
    Environment("basketball court", "on a basketball court with a hoop", "office wall", "cream", "court",
                0.45, "bright", ("hoop",), ("basketball court", "court", "arena", "gymnasium",
                                            "sports hall", "hoop")),
    Environment("desert", "in a sunny desert with dunes and cacti", "desert sky", "desert sky", "dune",
                0.35, "sunny", ("dunes", "cactus", "sun"), ("desert", "dune", "dunes", "cactus", "cacti",
                                                             "canyon", "arid")),
    Environment("dojo", "in a dojo with tatami mats and paper walls", "paper", "paper", "tatami", 0.50,
                "warm", ("paper wall",), ("dojo", "tatami", "martial arts hall", "karate school",
                                          "temple", "mat")),
    Environment("golf course", "on a golf course with a flag on the green", "sky", "pale sky", "grass",
                0.30, "sunny", ("flag", "trees"), ("golf course", "fairway", "putting green",
                                                   "driving range", "golf links")),
)

ENVIRONMENT_BY_NAME: dict[str, Environment] = {e.name: e for e in ENVIRONMENTS}

# Lighting presets: (brightness, tint RGB, side-gradient strength). Prompts can override them.
LIGHTING: dict[str, tuple[float, tuple[float, float, float], float]] = {
    "day": (1.0, (1.0, 1.0, 1.0), 0.05),
    "sunny": (1.08, (1.0, 0.98, 0.90), 0.12),
    "bright": (1.12, (1.0, 1.0, 1.0), 0.03),
    "dim": (0.72, (0.95, 0.95, 1.0), 0.10),
    "warm": (0.95, (1.0, 0.90, 0.75), 0.08),
    "fluorescent": (1.02, (0.94, 1.0, 1.0), 0.02),
    "spotlight": (0.80, (1.0, 0.97, 0.88), 0.0),
    "night": (0.45, (0.70, 0.78, 1.0), 0.06),
    "sunset": (0.85, (1.0, 0.72, 0.52), 0.18),
}

LIGHTING_PHRASES: dict[str, tuple[str, ...]] = {
    "night": ("at night", "night", "nighttime", "in the dark", "darkness", "moonlight", "moonlit", "midnight"),
    "sunset": ("sunset", "dusk", "golden hour", "evening", "sunrise", "dawn"),
    "dim": ("dim", "dimly lit", "gloomy", "shadowy", "shade", "shaded", "overcast", "cloudy"),
    "bright": ("bright", "brightly lit", "well lit", "sunlit", "daylight"),
    "sunny": ("sunny", "sunshine", "midday", "noon"),
    "warm": ("warm light", "warmly lit", "cozy", "lamplight", "candlelight"),
    "spotlight": ("spotlight", "spotlit", "stage light"),
    "fluorescent": ("fluorescent", "neon"),
}

# --------------------------------------------------------------------------------------------
# Characters
# --------------------------------------------------------------------------------------------

CHARACTERS: tuple[CharacterLook, ...] = (
    CharacterLook("woman with long brown hair", "a young woman with long brown hair in a pink shirt",
                  Character(skin="light", top="pink", bottom="blue", hair="brown", hair_style="long"),
                  ("woman with long brown hair", "long hair", "brunette", "young woman")),
    CharacterLook("tall man in a red shirt", "a tall man in a red shirt and blue jeans",
                  Character(skin="tan", top="red", bottom="blue", hair="black", height=1.12),
                  ("tall man",)),
    CharacterLook("small child", "a small child in a yellow shirt and red shorts",
                  Character(skin="light", top="yellow", bottom="red", bottom_kind="shorts", hair="blonde",
                            height=CHILD_HEIGHT, child=True),
                  ("small child", "child", "kid", "toddler", "little boy", "little girl", "boy", "schoolboy")),
    CharacterLook("old man with grey hair", "an old man with grey hair in a brown cardigan",
                  Character(skin="light", top="brown", bottom="khaki", hair="grey", build="thin",
                            elderly=True),
                  ("old man", "elderly man", "grandfather", "senior", "elderly", "retiree", "pensioner",
                   "old woman", "grandmother", "elderly woman")),
    CharacterLook("athletic woman in a blue tracksuit", "an athletic woman in a blue tracksuit with a "
                  "blonde ponytail",
                  Character(skin="tan", top="blue", bottom="blue", hair="blonde", hair_style="ponytail",
                            build="thin"),
                  ("athletic woman", "sporty woman", "female athlete", "jogger", "runner")),
    CharacterLook("businessman in a black suit", "a businessman in a black suit",
                  Character(skin="light", top="black", bottom="black", hair="brown", height=1.05),
                  ("businessman", "business man", "businesswoman", "office worker", "executive", "manager",
                   "man in a suit")),
    CharacterLook("heavy man in a green shirt", "a heavy-set man in a green shirt and grey pants",
                  Character(skin="brown", top="green", bottom="grey", hair="black", build="heavy"),
                  ("heavy man", "heavyset", "heavy set", "overweight", "stocky", "chubby", "big man",
                   "large man", "burly")),
    CharacterLook("teenager in a cap", "a teenager in an orange hoodie and a baseball cap",
                  Character(skin="dark", top="orange", bottom="black", hair="black", height=0.92,
                            accessory="cap", accessory_color="blue"),
                  ("teenager", "teen", "teenage", "skater", "adolescent")),
    CharacterLook("girl with a ponytail", "a young girl with a ponytail in a purple shirt",
                  Character(skin="brown", top="purple", bottom="pink", bottom_kind="shorts", hair="black",
                            hair_style="ponytail", height=CHILD_HEIGHT, child=True),
                  ("girl with a ponytail", "young girl", "girl", "schoolgirl", "little girl")),
    CharacterLook("martial artist in white", "a martial artist in a white uniform with a black belt",
                  Character(skin="tan", top="white", bottom="white", hair="black", build="thin",
                            accessory="headband", accessory_color="black"),
                  ("martial artist", "karateka", "kung fu master", "judoka", "black belt", "monk",
                   "sensei")),
    CharacterLook("soldier in camouflage", "a soldier in olive camouflage and a helmet",
                  Character(skin="tan", top="olive", bottom="olive", hair="black", build="heavy",
                            accessory="helmet", accessory_color="olive"),
                  ("soldier", "army", "military", "cadet", "marine", "recruit")),
    CharacterLook("woman in a yellow dress", "a woman in a yellow dress",
                  Character(skin="dark", top="yellow", bottom="yellow", bottom_kind="dress", hair="black",
                            hair_style="long"),
                  ("woman in a yellow dress", "woman in a dress", "lady in a dress", "lady")),
    CharacterLook("bald man in an orange vest", "a bald man in an orange vest",
                  Character(skin="brown", top="orange", bottom="navy", hair="black", hair_style="bald",
                            build="heavy", height=1.05),
                  ("bald man", "construction worker", "worker", "builder", "laborer", "labourer")),
    CharacterLook("basketball player in purple", "a tall basketball player in a purple jersey and shorts",
                  Character(skin="dark", top="purple", bottom="purple", bottom_kind="shorts", hair="black",
                            height=1.12, build="thin"),
                  ("basketball player", "player", "sportsman", "athlete")),
    CharacterLook("woman with a red headband", "a fitness instructor with a red headband in black leggings",
                  Character(skin="light", top="teal", bottom="black", hair="red", hair_style="ponytail",
                            accessory="headband", accessory_color="red"),
                  ("woman with a headband", "yoga instructor", "fitness instructor", "dancer", "ballerina",
                   "gymnast", "trainer")),
    CharacterLook("hiker with a backpack", "a hiker with a backpack in a brown jacket",
                  Character(skin="light", top="brown", bottom="khaki", hair="blonde", accessory="backpack",
                            accessory_color="green"),
                  ("hiker", "backpacker", "climber", "mountaineer", "explorer", "traveler", "traveller",
                   "tourist")),
    CharacterLook("chef in a white hat", "a chef in a white jacket and a white chef hat",
                  Character(skin="tan", top="white", bottom="black", hair="brown", accessory="chef hat",
                            accessory_color="white", height=1.02),
                  ("chef", "cook", "baker", "waiter", "waitress")),
    CharacterLook("cowboy in a brown hat", "a cowboy in a brown hat and a blue shirt",
                  Character(skin="tan", top="blue", bottom="brown", hair="brown", accessory="hat",
                            accessory_color="brown", height=1.08),
                  ("cowboy", "rancher", "farmer", "cowgirl", "man in a hat")),
)

CHARACTER_BY_NAME: dict[str, CharacterLook] = {c.name: c for c in CHARACTERS}

# --------------------------------------------------------------------------------------------
# Actions. Motions are in render.py (MOTIONS), keyed by these names.
# --------------------------------------------------------------------------------------------

_A = Action
ACTIONS: tuple[Action, ...] = (
    _A("brush hair", ("brush hair", "brush her hair", "brushing hair", "comb hair", "hairbrush",
                      "brush through hair", "groom hair", "combing", "brush long hair"),
       gerund="brushing hair", description="one hand moves a hairbrush down along the hair, again and again",
       stereotype_env="bathroom", stereotype_character="woman with long brown hair",
       typical_envs=("bathroom", "bedroom", "stage", "office"), hard_pair="brush teeth"),
    _A("brush teeth", ("brush teeth", "toothbrush", "brushing teeth", "clean teeth", "tooth"),
       gerund="brushing teeth", description="one hand moves a toothbrush quickly back and forth at the mouth",
       stereotype_env="bathroom", stereotype_character="small child",
       typical_envs=("bathroom", "bedroom", "kitchen", "city street"), hard_pair="eat"),
    _A("wave", ("wave", "wave hand", "wave goodbye", "wave hello", "waves at", "hand wave"),
       weak=("greet",), gerund="waving", description="one arm is raised high and the hand swings from side to side",
       stereotype_env="city street", stereotype_character="businessman in a black suit",
       typical_envs=("city street", "park", "beach", "office"), hard_pair="clap"),
    _A("clap", ("clap", "clap hand", "applaud", "applause", "clapping"),
       gerund="clapping", description="both hands meet in front of the chest and part again, rhythmically",
       stereotype_env="stage", stereotype_character="woman in a yellow dress",
       typical_envs=("stage", "office", "park", "bedroom"), hard_pair="wave"),
    _A("punch", ("punch", "jab", "boxing", "shadowbox", "throw punch", "uppercut", "boxer"),
       weak=("box", "fist", "hook"),
       gerund="punching", description="fists are raised and one arm shoots straight forward, then the other",
       stereotype_env="gym", stereotype_character="heavy man in a green shirt",
       typical_envs=("gym", "dojo", "city street", "park"), hard_pair="punch bag"),
    _A("punch bag", ("punch bag", "punching bag", "heavy bag", "boxing bag", "punchbag", "sandbag",
                     "hit bag"),
       gerund="punching a bag", description="fists strike a heavy hanging bag, one arm after the other",
       stereotype_env="gym", stereotype_character="heavy man in a green shirt",
       typical_envs=("gym", "dojo", "city street", "basketball court"), hard_pair="punch"),
    _A("kick", ("kick", "kick leg", "karate kick", "high kick", "front kick", "roundhouse", "kick air"),
       gerund="kicking", description="one leg swings up high in front of the body and comes back down",
       stereotype_env="dojo", stereotype_character="martial artist in white",
       typical_envs=("dojo", "gym", "park", "beach"), hard_pair="kick ball"),
    _A("kick ball", ("kick ball", "kick a ball", "kick the ball", "kick soccer ball", "kick football",
                     "soccer", "football", "penalty kick", "shoot goal"),
       gerund="kicking a ball", description="one leg swings forward and sends a ball flying away",
       stereotype_env="park", stereotype_character="teenager in a cap",
       typical_envs=("park", "beach", "city street", "basketball court"), hard_pair="kick"),
    _A("jump", ("jump", "leap", "hop", "jump up", "spring up", "vertical jump"), weak=("bounce",),
       gerund="jumping", description="the person crouches, then springs up into the air and lands",
       stereotype_env="park", stereotype_character="small child",
       typical_envs=("park", "beach", "gym", "basketball court"), hard_pair="jumping jack"),
    _A("jumping jack", ("jumping jack", "star jump", "jumping jacks", "side straddle hop"),
       gerund="doing jumping jacks", description="arms and legs spread out wide and close again with each hop",
       stereotype_env="gym", stereotype_character="athletic woman in a blue tracksuit",
       typical_envs=("gym", "park", "basketball court", "bedroom"), hard_pair="jump"),
    _A("squat", ("squat", "squats", "squat down", "deep squat", "bodyweight squat", "crouch", "knee bend"),
       gerund="squatting", description="the hips sink down with bent knees and the arms reach forward",
       stereotype_env="gym", stereotype_character="athletic woman in a blue tracksuit",
       typical_envs=("gym", "park", "bedroom", "beach"), hard_pair="lunge"),
    _A("lunge", ("lunge", "lunges", "walking lunge", "forward lunge", "step forward and bend"),
       gerund="doing lunges", description="one leg steps far forward and the back knee drops toward the floor",
       stereotype_env="gym", stereotype_character="woman with a red headband",
       typical_envs=("gym", "park", "beach", "bedroom"), hard_pair="squat"),
    _A("push up", ("push up", "pushup", "push ups", "pushups", "press up", "press ups", "pressup"),
       gerund="doing push ups", description="the body is straight and low, and the arms push it up and down",
       stereotype_env="gym", stereotype_character="soldier in camouflage",
       typical_envs=("gym", "park", "beach", "dojo"), hard_pair="sit up"),
    _A("sit up", ("sit up", "situp", "sit ups", "situps", "crunch", "crunches", "abdominal"),
       gerund="doing sit ups", description="lying on the back, the torso curls up to the knees and down",
       stereotype_env="gym", stereotype_character="soldier in camouflage",
       typical_envs=("gym", "bedroom", "park", "beach"), hard_pair="push up"),
    _A("pull up", ("pull up", "pullup", "pull ups", "pullups", "chin up", "chinup", "chin ups",
                   "chinups", "pull bar", "horizontal bar"),
       gerund="doing pull ups", description="hanging from a bar, the arms pull the body up and lower it",
       stereotype_env="gym", stereotype_character="basketball player in purple",
       typical_envs=("gym", "park", "dojo", "basketball court"), hard_pair="climb"),
    _A("walk", ("walk", "stroll", "march", "wander", "step along", "saunter", "hike"),
       weak=("walker", "pedestrian"), gerund="walking",
       description="the legs step forward one after the other, arms swinging",
       stereotype_env="city street", stereotype_character="businessman in a black suit",
       typical_envs=("city street", "park", "forest", "beach"), hard_pair="run"),
    _A("run", ("run", "jog", "sprint", "dash", "running", "ran"), weak=("race", "runner", "jogger"),
       gerund="running", description="the legs stride fast with bent arms pumping and the body leaning forward",
       stereotype_env="park", stereotype_character="athletic woman in a blue tracksuit",
       typical_envs=("park", "beach", "city street", "forest"), hard_pair="walk"),
    _A("climb", ("climb", "rock climb", "climbing wall", "boulder", "bouldering", "scale wall",
                 "climb rock", "rock climbing", "climb wall"),
       gerund="climbing", description="hands reach up to holds on a wall, one after the other, lifting the body",
       stereotype_env="forest", stereotype_character="hiker with a backpack",
       typical_envs=("forest", "gym", "desert", "park"), hard_pair="climb stairs"),
    _A("climb stairs", ("climb stairs", "climb the stairs", "go upstairs", "walk upstairs", "walk up stairs",
                        "run up stairs", "climb staircase", "climb steps", "go up stairs"),
       weak=("stairs", "staircase", "stairway", "steps"),
       gerund="climbing stairs", description="the legs step up from one stair to the next, rising steadily",
       stereotype_env="office", stereotype_character="businessman in a black suit",
       typical_envs=("office", "city street", "park", "bedroom"), hard_pair="climb"),
    _A("drink", ("drink", "sip", "drink from cup", "drink water", "drinking", "drank", "glass of water"),
       weak=("cup", "mug", "beverage", "bottle"),
       gerund="drinking", description="a hand lifts a cup to the mouth and the head tilts back",
       stereotype_env="kitchen", stereotype_character="old man with grey hair",
       typical_envs=("kitchen", "office", "park", "bedroom"), hard_pair="eat"),
    _A("eat", ("eat", "eating", "ate", "take a bite", "bite", "chew", "have a meal", "spoonful"),
       weak=("snack", "meal", "food", "spoon", "fork", "bowl"),
       gerund="eating", description="a hand brings food to the mouth again and again while holding a bowl",
       stereotype_env="kitchen", stereotype_character="chef in a white hat",
       typical_envs=("kitchen", "office", "park", "bedroom"), hard_pair="drink"),
    _A("throw", ("throw", "toss", "hurl", "throw ball", "baseball pitch", "threw", "fling", "throw a ball",
                 "pitch a ball", "pitcher"), weak=("pitch",),
       gerund="throwing", description="one arm swings back and over the shoulder and lets a ball fly",
       stereotype_env="park", stereotype_character="tall man in a red shirt",
       typical_envs=("park", "beach", "basketball court", "golf course"), hard_pair="catch"),
    _A("catch", ("catch", "caught", "catch ball", "catch a ball", "receive ball", "grab ball"),
       gerund="catching", description="a ball flies in and the arms reach forward and pull it in",
       stereotype_env="park", stereotype_character="small child",
       typical_envs=("park", "beach", "basketball court", "city street"), hard_pair="throw"),
    _A("dribble", ("dribble", "dribbling", "bounce ball", "bounce a basketball", "basketball",
                   "dribble ball"),
       gerund="dribbling a basketball", description="one hand pushes a ball down so it bounces back up",
       stereotype_env="basketball court", stereotype_character="basketball player in purple",
       typical_envs=("basketball court", "city street", "park", "gym"), hard_pair="punch bag"),
    _A("golf", ("golf", "golf swing", "swing golf club", "tee off", "putt", "drive ball", "swing club"),
       weak=("golfer",),
       gerund="swinging a golf club", description="both hands swing a club down and through across the body",
       stereotype_env="golf course", stereotype_character="old man with grey hair",
       typical_envs=("golf course", "park", "desert", "beach"), hard_pair="tennis swing"),
    _A("tennis swing", ("tennis swing", "tennis", "racket", "racquet", "forehand", "backhand", "swing racket"),
       weak=("serve",),
       gerund="swinging a tennis racket", description="one arm swings a racket sideways at shoulder height",
       stereotype_env="basketball court", stereotype_character="woman with a red headband",
       typical_envs=("basketball court", "park", "beach", "gym"), hard_pair="golf"),
    _A("sword", ("sword", "fence", "fencing", "swordfight", "sword fight", "thrust sword", "rapier", "epee",
                 "swordsman", "sword fighting"), weak=("fencer", "duel", "foil"),
       gerund="fencing with a sword", description="the sword arm thrusts forward in a deep lunge and returns",
       stereotype_env="dojo", stereotype_character="martial artist in white",
       typical_envs=("dojo", "gym", "stage", "park"), hard_pair="sword exercise"),
    _A("sword exercise", ("sword exercise", "sword practice", "sword kata", "sword drill", "practice sword",
                          "sword routine", "kata", "katana", "sword forms",
                          "practise sword forms", "practice sword forms"),
       gerund="practising sword forms", description="a sword is held in both hands and moved in slow wide arcs",
       stereotype_env="dojo", stereotype_character="martial artist in white",
       typical_envs=("dojo", "park", "forest", "snowfield"), hard_pair="sword"),
    _A("tai chi", ("tai chi", "taichi", "qigong", "slow form", "shadow boxing slowly"),
       gerund="doing tai chi", description="the arms flow slowly in circles while the weight shifts side to side",
       stereotype_env="park", stereotype_character="old man with grey hair",
       typical_envs=("park", "dojo", "forest", "beach"), hard_pair="sword exercise"),
    _A("dance", ("dance", "dancing", "danced", "boogie", "groove", "disco", "ballet", "choreography"),
       gerund="dancing", description="the hips sway and the arms go up one after the other with the beat",
       stereotype_env="stage", stereotype_character="woman in a yellow dress",
       typical_envs=("stage", "bedroom", "beach", "city street"), hard_pair="hula hoop"),
    _A("shoot bow", ("shoot bow", "archery", "bow and arrow", "arrow", "draw bow", "shoot arrow", "longbow",
                     "recurve", "shoot a bow"), weak=("archer",),
       gerund="shooting a bow", description="one arm holds a bow out while the other draws the string back",
       stereotype_env="forest", stereotype_character="hiker with a backpack",
       typical_envs=("forest", "park", "desert", "golf course"), hard_pair="throw"),
    _A("handstand", ("handstand", "hand stand", "upside down", "stand on hands", "inverted",
                     "balance on hands"),
       gerund="doing a handstand", description="the body is upside down on the hands with the legs straight up",
       stereotype_env="beach", stereotype_character="girl with a ponytail",
       typical_envs=("beach", "gym", "park", "dojo"), hard_pair="cartwheel"),
    _A("cartwheel", ("cartwheel", "cartwheels", "roundoff", "turn cartwheel"), weak=("gymnastics", "tumble"),
       gerund="doing a cartwheel", description="the body turns sideways over the hands with the legs spread wide",
       stereotype_env="beach", stereotype_character="girl with a ponytail",
       typical_envs=("beach", "park", "gym", "stage"), hard_pair="handstand"),
    _A("sit", ("sit down", "take a seat", "sits down", "sitting down", "sat down", "lower onto chair",
               "be seated"), weak=("sit", "sitting", "seated", "chair"),
       gerund="sitting down", description="from standing, the person lowers onto a chair",
       stereotype_env="office", stereotype_character="old man with grey hair",
       typical_envs=("office", "kitchen", "bedroom", "park"), hard_pair="stand"),
    _A("stand", ("stand up", "stands up", "standing up", "stood up", "get up", "gets up", "rise from chair",
                 "get to feet", "rise from seat"), weak=("stand", "standing", "upright", "rise"),
       gerund="standing up", description="from a chair, the person pushes up to standing",
       stereotype_env="office", stereotype_character="old man with grey hair",
       typical_envs=("office", "kitchen", "bedroom", "park"), hard_pair="sit"),
    _A("fall floor", ("fall floor", "fall down", "fall to floor", "fall on floor", "fall over", "trip",
                      "tumble down", "collapse", "fell", "slip and fall", "faint", "fall", "trip and fall"),
       weak=("trip", "slip"),
       gerund="falling to the floor", description="the person loses balance, tips over and lands on the floor",
       stereotype_env="city street", stereotype_character="old man with grey hair",
       typical_envs=("city street", "bedroom", "kitchen", "snowfield"), hard_pair="sit"),
    _A("ride bike", ("ride bike", "ride a bike", "bike", "bicycle", "cycling", "biking", "pedal",
                     "ride bicycle"), weak=("cycle", "cyclist", "rode"),
       gerund="riding a bike", description="seated on a bicycle, the legs push the pedals round and round",
       stereotype_env="city street", stereotype_character="teenager in a cap",
       typical_envs=("city street", "park", "forest", "desert"), hard_pair="run"),
    _A("juggle", ("juggle", "juggling", "juggle balls", "juggling balls"), weak=("juggler",),
       gerund="juggling", description="the hands toss three balls up in turn and catch them as they fall",
       stereotype_env="stage", stereotype_character="teenager in a cap",
       typical_envs=("stage", "park", "city street", "beach"), hard_pair="catch"),
    _A("jump rope", ("jump rope", "skip rope", "skipping rope", "rope skipping", "skipping", "jumping rope",
                     "jump over rope", "turn rope"), weak=("rope",),
       gerund="jumping rope", description="small hops while both hands turn a rope over the head and under the feet",
       stereotype_env="gym", stereotype_character="girl with a ponytail",
       typical_envs=("gym", "park", "basketball court", "city street"), hard_pair="jump"),
    _A("swim", ("swim", "swimming", "swam", "front crawl", "freestyle stroke", "breaststroke", "backstroke",
                "do laps"), weak=("swimmer", "paddle"),
       gerund="swimming", description="lying flat in the water, the arms circle over one after the other",
       stereotype_env="swimming pool", stereotype_character="athletic woman in a blue tracksuit",
       typical_envs=("swimming pool", "beach", "forest", "park"), hard_pair="push up"),
    _A("hula hoop", ("hula hoop", "hula hooping", "hula", "hooping", "spin hoop", "spin a hoop"), weak=("hoop",),
       gerund="hula hooping", description="the hips circle to keep a hoop spinning around the waist",
       stereotype_env="beach", stereotype_character="woman with a red headband",
       typical_envs=("beach", "park", "stage", "bedroom"), hard_pair="dance"),
)

ACTION_BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}

# --------------------------------------------------------------------------------------------
# The world's datasets (class lists)
# --------------------------------------------------------------------------------------------

WORLD_CLASS_LISTS: dict[str, list[str]] = {
    # The source dataset: broad everyday and sports actions (Kinetics-400's role).
    "world_k400": [
        "brush hair", "wave", "clap", "punch", "kick", "jump", "jumping jack", "squat", "lunge", "push up",
        "sit up", "pull up", "walk", "run", "climb", "drink", "eat", "throw", "catch", "dribble", "golf",
        "tennis swing", "sword", "dance", "shoot bow", "handstand", "ride bike", "swim",
    ],
    # HMDB-51's role: everyday actions with hard pairs (kick / kick ball, sword / sword exercise,
    # sit / stand); 7 of its 29 classes are absent from the source.
    "world_hmdb": [
        "brush hair", "cartwheel", "catch", "clap", "climb", "climb stairs", "dribble", "drink", "eat",
        "fall floor", "golf", "handstand", "jump", "kick", "kick ball", "pull up", "punch", "push up",
        "ride bike", "run", "shoot bow", "sit", "sit up", "stand", "sword", "sword exercise", "throw",
        "walk", "wave",
    ],
    # UCF-101's role: sports and exercises; 6 of its 24 classes are absent from the source.
    "world_ucf": [
        "brush teeth", "climb", "dribble", "golf", "handstand", "hula hoop", "juggle", "jump rope",
        "jumping jack", "lunge", "pull up", "punch", "punch bag", "push up", "ride bike", "shoot bow",
        "squat", "swim", "sword", "tai chi", "tennis swing", "throw", "walk", "jump",
    ],
}

SOURCE_DATASET = "world_k400"
TARGET_DATASETS = ("world_hmdb", "world_ucf")


def target_only_classes(dataset: str) -> list[str]:
    """Classes of a target dataset that the source dataset lacks (zero-shot's hard part)."""
    source = set(WORLD_CLASS_LISTS[SOURCE_DATASET])
    return [c for c in WORLD_CLASS_LISTS[dataset] if c not in source]


def environment_descriptions(action: str, n: int = 4) -> list[str]:
    """``n`` environment sentences for an action, typical places first: what an IE prompt writer
    (GPT-4o in the paper) would return for "where does this action usually happen"."""
    spec = ACTION_BY_NAME[action]
    names = list(spec.typical_envs) + [e.name for e in ENVIRONMENTS if e.name not in spec.typical_envs]
    return [ENVIRONMENT_BY_NAME[name].description for name in names[:n]]


def character_descriptions(n: int = 16) -> list[str]:
    """``n`` character sentences, all looks in turn: the IE writer's varied people."""
    return [CHARACTERS[i % len(CHARACTERS)].description for i in range(n)]


def ie_prompts(action: str, n: int, offset: int = 0) -> list[str]:
    """``n`` information-enhanced prompts for an action (character ``offset + i``, the action in one
    of its 4 environments, the action's description): the IE prompts' shape, without a writer."""
    spec = ACTION_BY_NAME[action]
    envs = environment_descriptions(action, 4)
    return [f"{CHARACTERS[(i + offset) % len(CHARACTERS)].description.capitalize()} is {spec.gerund} "
            f"{envs[i % 4]}. {spec.description.capitalize()}." for i in range(n)]


def caption_words() -> set[str]:
    """Every word a caption or prompt template of the world can use (the world CLIP's vocabulary)."""
    words: set[str] = set()

    def add(text: str) -> None:
        for w in text.lower().replace("-", " ").replace(",", " , ").replace(".", " . ").split():
            words.add(w)

    for a in ACTIONS:
        add(a.name)
        add(a.gerund)
        add(a.description)
        for p in a.phrases + a.weak:
            add(p)
    for e in ENVIRONMENTS:
        add(e.name)
        add(e.description)
        for p in e.phrases:
            add(p)
    for c in CHARACTERS:
        add(c.name)
        add(c.description)
        for p in c.phrases:
            add(p)
    for name in list(COLORS) + list(COLOR_SYNONYMS) + list(SKIN_TONES) + list(LIGHTING):
        add(name)
    for phrases in LIGHTING_PHRASES.values():
        for p in phrases:
            add(p)
    # Prompt-template words used by CLIP-style zero-shot classifiers and by the captions.
    add("a an the of in on at with and is are video photo picture clip image frame person people "
        "man woman someone human who doing does performing perform action activity . , ! ? ' : ; "
        "this that there here it its his her their they he she from to into by for while as "
        "outdoors indoors inside outside scene shot view footage close up camera of")
    return words
