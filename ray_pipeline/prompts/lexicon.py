"""The template writer's built-in lexicon: scenes, looks and motions, chosen per class by keyword.

A class name is matched against the keywords of every :class:`Scene` (word prefixes, or whole
words for keywords ending in ``$``); the matching scenes, in the order listed, give the pool of
environments, outfits, ages and the motion sentence. Unmatched classes use the generic scene.
Everything is plain data so it can be read and extended without touching the writer.
"""

from __future__ import annotations

from dataclasses import dataclass, field

ADULT_AGES = ("teenage", "young", "middle-aged", "elderly")
ACTIVE_AGES = ("teenage", "young", "young", "middle-aged")


@dataclass(frozen=True)
class Scene:
    """Where a kind of action happens, what its performers wear, and how it moves."""

    name: str
    keywords: tuple[str, ...]
    environments: tuple[str, ...]  # location phrases, each starting with a preposition
    outfits: tuple[str, ...]  # "{color}" is filled from COLORS; "m:"/"f:" marks gendered clothes
    motion: str  # an action-description sentence; no appearance, no location
    ages: tuple[str, ...] = ADULT_AGES
    people: tuple[str, ...] = field(default=())  # whole character phrases that replace the generator


COLORS = ("red", "navy blue", "black", "white", "yellow", "forest green", "grey", "orange", "purple",
          "teal", "maroon", "sky blue", "beige", "pink", "olive", "charcoal")

SCENES: tuple[Scene, ...] = (
    Scene(
        "crime", ("abuse$", "arrest$", "arson$", "assault$", "burglary$", "explosion$", "robbery$",
                  "shoplifting$", "stealing$", "vandalism$", "accidents$", "normal$", "shooting$",
                  "fighting$"),
        ("in a convenience store seen from a ceiling-mounted security camera",
         "in a dim parking garage filmed by a grainy surveillance camera",
         "on a city street corner at night under orange streetlights, seen from a CCTV camera",
         "at a petrol station forecourt under harsh fluorescent canopy lights",
         "in a narrow apartment hallway lit by a flickering ceiling lamp",
         "at a busy road intersection seen from a high traffic camera",
         "in a supermarket aisle with stocked shelves, filmed from a corner camera",
         "outside a shop front with a metal shutter on a quiet residential street"),
        ("a dark hoodie and jeans", "a {color} jacket and work trousers",
         "a {color} t-shirt and cargo shorts",
         "a {color} coat and a knitted cap", "a {color} tracksuit", "a {color} uniform shirt"),
        "The movements are quick and abrupt, seen from a fixed, high camera angle that shows the whole "
        "body and the people and objects around it.",
        ages=("teenage", "young", "middle-aged")),
    Scene(
        "baby", ("baby$", "crawling$"),
        ("on a soft play mat in a sunny living room", "on a carpeted nursery floor scattered with toys",
         "on a wooden floor in a bright family kitchen", "on a blanket spread on a garden lawn",
         "in a cot in a pastel bedroom with morning light", "on a rug beside a sofa in a cosy lounge",
         "on a padded playpen floor with colourful blocks", "on a hallway floor near an open door"),
        (), "Small, wobbly movements of the arms and legs, repeated with pauses, the whole body in view.",
        people=("a chubby baby in a white onesie with wispy blond hair",
                "a baby girl in a pink romper with short dark curls",
                "a baby boy in blue dungarees with a tuft of brown hair",
                "a bald baby in a yellow sleepsuit", "a toddler in a striped t-shirt and nappy",
                "a baby in a green knitted cardigan with red hair",
                "a dark-skinned baby in an orange bodysuit", "a baby in a grey hoodie and socks",
                "a rosy-cheeked baby in a polka-dot dress", "a baby in a white vest with thick black hair",
                "a toddler girl in a purple dress with pigtails", "a toddler boy in denim shorts",
                "a baby in a teal sleepsuit with a bib", "a baby in a red jumper with curly hair",
                "a tiny baby in a cream knitted suit", "a toddler in pyjamas with a bear print",
                "a baby in a mint romper with a sun hat", "an olive-skinned baby in a navy onesie")),
    Scene(
        "water", ("swim", "dive$", "diving", "surf", "row$", "rowing", "kayak", "canoe", "raft", "sail",
                  "snorkel", "scuba", "breast", "crawl$", "backstroke", "butterfly", "water", "jet", "skijet",
                  "paddle", "bodysurf", "cliff", "pool", "capsiz", "windsurf", "kitesurf", "parasail",
                  "fishing", "fish$"),
        ("in an outdoor swimming pool with lane ropes under a clear midday sky",
         "at a rocky coastline with turquoise waves and bright sun",
         "on a calm mountain lake surrounded by pine trees at dawn",
         "at a wide sandy beach with rolling surf in the afternoon",
         "in an indoor aquatic centre with tiled walls and big windows",
         "on a fast river with white water between forested banks",
         "in a tropical lagoon with clear shallow water and palm trees",
         "at a harbour with moored boats on an overcast day"),
        ("a {color} swimsuit", "m:{color} swim trunks", "a black wetsuit with {color} panels",
         "a {color} rash guard and board shorts", "a {color} life jacket over a t-shirt",
         "f:a {color} one-piece swimsuit and goggles"),
        "The arms and legs work against the water in a steady rhythm, with splashes and ripples "
        "spreading around the body.", ages=ACTIVE_AGES),
    Scene(
        "snow", ("ski$", "skiing", "snow", "sled", "tobogg", "ice$", "skating", "skate$", "hockey", "curling",
                 "bobsled", "luge",
                "ice danc"),
        ("on a groomed ski slope under a bright blue winter sky",
         "on a frozen lake ringed by snowy pine trees",
         "at an indoor ice rink with white boards and bright lights",
         "in a snowy mountain valley with falling snowflakes",
         "on a snow-covered hillside in a quiet village at dusk",
         "at an alpine resort with chairlifts in the background",
         "in deep powder snow among tall fir trees", "on an outdoor rink decorated with string lights"),
        ("a {color} ski jacket and black snow trousers", "a {color} puffer coat and a woollen beanie",
         "a {color} thermal top and padded gloves", "a {color} hockey jersey and helmet",
         "f:a {color} skating dress", "a {color} snowsuit and goggles"),
        "The body leans and balances while gliding, knees bent, arms out for balance, snow or ice "
        "spraying from the edges.", ages=ACTIVE_AGES),
    Scene(
        "gymnastics", ("balance$", "beam$", "parallel", "pommel", "rings$", "uneven", "gymnast", "tumbling",
                       "vault", "trampoline", "flic$", "cartwheel", "somersault", "handstand", "backflip",
                       "trapez", "acrobat",
                "contort", "pirouet"),
        ("in a competition gymnastics arena with blue mats and spectators",
         "in a training gym with foam pits and chalk-dusted equipment",
         "on a padded floor in a school sports hall with high windows",
         "on a sunny beach with firm wet sand", "on a grassy park lawn on a summer afternoon",
         "in a circus tent with a sawdust ring and spotlights",
         "in a bright dance studio with a mirrored wall",
         "in a backyard with a trampoline and a wooden fence"),
        ("a {color} leotard", "a {color} sleeveless top and shorts", "a {color} gymnastics suit",
         "{color} athletic leggings and a crop top", "a {color} singlet", "a {color} tank top and joggers"),
        "The whole body rotates and balances with straight lines and pointed toes, moving through the "
        "take-off, the skill and the landing.", ages=("teenage", "young", "young")),
    Scene(
        "gym", ("weight", "lift", "press", "bench$", "squat", "lunge", "deadlift", "pull", "push up",
                "pushup", "pullup", "situp", "ups$", "exercising$", "aerobic", "jumping$", "jack$",
                "crossfit",
                "clean$", "jerk$", "snatch", "raises$", "stretching", "treadmill", "battle", "spinning",
                "yoga", "zumba", "pilates", "punching$", "boxing", "speed$", "bag$", "workout"),
        ("in a busy gym with weight racks and rubber flooring",
         "in a garage home gym with a squat rack and bare brick walls",
         "in a sunlit fitness studio with wooden floors and mirrors",
         "at an outdoor workout area in a park with metal bars",
         "in a boxing club with hanging bags and a ring in the background",
         "in a crossfit box with chalk marks and kettlebells on the floor",
         "in a hotel fitness room with treadmills by a window",
         "on a rooftop terrace with exercise mats at sunrise"),
        ("a {color} tank top and black shorts", "a {color} compression shirt and joggers",
         "f:a {color} sports bra and leggings", "a {color} sleeveless hoodie and training shorts",
         "a {color} t-shirt and grey sweatpants", "a {color} gym vest and cycling shorts"),
        "The exercise is repeated in a steady rhythm: muscles tense on the effort, the body returns to "
        "the start position, and any weight or equipment moves along a controlled path.",
        ages=ACTIVE_AGES),
    Scene(
        "golf", ("golf",),
        ("on a sunlit golf course fairway lined with tall trees",
         "on a putting green with a flag and a bunker",
         "at a driving range with distance markers and netting",
         "on a links course by the sea under a grey sky",
         "on a hillside golf course in early morning mist",
         "at an indoor golf simulator with a projection screen",
         "on a desert golf course with palm trees", "on a practice tee at a country club"),
        ("a {color} polo shirt and beige trousers", "a {color} golf sweater and a visor",
         "a white polo shirt and {color} shorts", "a {color} windbreaker and a flat cap",
         "f:a {color} sleeveless golf top and a skort", "a {color} quarter-zip and chinos"),
        "The body coils back and uncoils through a smooth swing, the club head travelling in a wide arc "
        "and the ball flying off.", ages=ADULT_AGES),
    Scene(
        "racket", ("tennis", "badminton", "squash", "racquet", "racket", "ping pong", "table tennis"),
        ("on a clay tennis court under afternoon sun", "on a floodlit hard court at night",
         "in an indoor sports hall with badminton lines on the floor", "on a grass court with white lines",
         "in a glass-walled squash court", "in a community centre with table tennis tables",
         "on a park tennis court with a chain-link fence", "in a school gym with a net across the floor"),
        ("a {color} polo shirt and white shorts", "f:a {color} tennis dress and a visor",
         "a {color} sports top and a sweatband", "a white t-shirt and {color} shorts",
         "a {color} tracksuit top", "a {color} sleeveless shirt and a headband"),
        "Quick footwork sets up the shot, the racket swings through to meet the ball or shuttle, and the "
        "body recovers to a ready stance.", ages=ACTIVE_AGES),
    Scene(
        "basketball", ("basketball", "dunk", "dribbl", "netball", "shoot ball", "hoop$"),
        ("on an outdoor basketball court with a chain-link fence", "in an indoor arena with a polished floor",
         "in a school gym with folded bleachers", "on a neighbourhood driveway with a hoop above the garage",
         "on a rooftop court with city views at sunset", "in a community sports hall with painted lines",
         "on a playground court with cracked asphalt", "in a floodlit street court at night"),
        ("a {color} basketball jersey and shorts", "a {color} sleeveless top and long shorts",
         "a {color} hoodie and sweatpants", "a {color} t-shirt and high-top sneakers",
         "a {color} team vest over a t-shirt", "a {color} warm-up jacket"),
        "The ball bounces and is carried up with quick hands, the legs bend and spring, and the ball "
        "travels toward the hoop.", ages=ACTIVE_AGES),
    Scene(
        "football", ("soccer", "football", "kick ball", "penalty", "goal", "rugby", "kickball", "hurling",
                     "lacrosse", "field hockey", "tackling", "kicking field"),
        ("on a grass football pitch with white lines and goalposts",
         "on an artificial turf field under floodlights",
         "in a stadium with packed stands", "in a muddy village field on a grey day",
         "on a sandy beach with makeshift goals", "in a city park on a patch of worn grass",
         "in a school playground marked with painted lines", "on a training ground with cones and bibs"),
        ("a {color} team jersey and shorts", "a {color} training bib over a t-shirt",
         "a {color} long-sleeved kit and socks", "a {color} goalkeeper top and gloves",
         "a {color} hoodie and joggers", "a {color} striped shirt and shorts"),
        "The player runs up, plants one foot and strikes or carries the ball, the body following through "
        "as the ball speeds away.", ages=ACTIVE_AGES),
    Scene(
        "bat_ball", ("baseball", "softball", "cricket", "pitch$", "pitching", "batting", "swing baseball"),
        ("on a sunny baseball diamond with a dirt infield", "in a cricket ground with a white pavilion",
         "in a batting cage with green netting", "on a village cricket green with trees around",
         "in a floodlit stadium at night", "on a backyard lawn with a makeshift pitch",
         "at a school sports field with a backstop fence", "in an indoor training hall with nets"),
        ("a {color} baseball jersey and a cap", "cricket whites and a {color} cap",
         "a {color} training shirt and batting gloves", "a {color} hoodie and baseball pants",
         "a {color} t-shirt and a helmet", "a {color} team uniform with stripes"),
        "The arm winds up and delivers or the bat swings level and hard, the ball flying off the bat "
        "or into the glove.", ages=ACTIVE_AGES),
    Scene(
        "volleyball", ("volleyball", "spiking"),
        ("on a sandy beach volleyball court with a net and blue sky", "in an indoor arena with a taut net",
         "in a school gym with a volleyball net across the floor",
         "at a park with a net strung between poles",
         "on a lakeside sand court at sunset", "in a sports centre with coloured floor lines",
         "at a resort beach with palm trees", "on a grass court at a summer festival"),
        ("a {color} volleyball jersey and shorts", "a {color} sports top and knee pads",
         "f:a {color} bikini top and shorts", "a {color} tank top and board shorts",
         "a {color} team uniform", "a {color} compression top and shorts"),
        "A fast approach, a two-footed jump and a hard arm swing send the ball over the net.",
        ages=ACTIVE_AGES),
    Scene(
        "indoor_games", ("bowling", "billiards", "pool$", "snooker", "darts", "pinball"),
        ("in a bowling alley with neon lights and polished lanes", "in a dim pub with a green-felt table",
         "in a games room with wood panelling", "in a busy bar with hanging lamps",
         "in a family entertainment centre with arcade machines", "in a basement den with a sofa",
         "in a snooker hall with rows of tables", "in a hotel lounge with leather chairs"),
        ("a {color} bowling shirt", "a {color} waistcoat over a white shirt", "a {color} polo shirt",
         "a {color} flannel shirt", "a {color} t-shirt and jeans", "a {color} cardigan"),
        "A careful stance and aim, then one smooth arm movement sends the ball rolling, and the eyes "
        "follow it to the target.", ages=ADULT_AGES),
    Scene(
        "ball_sport", ("ball", "frisbee", "dodgeball", "catch", "throw", "juggling", "polo$", "shot$",
                       "kickball", "hopscotch"),
        ("on a grass sports field with white lines", "in a city park on a patch of worn grass between trees",
         "in an indoor sports hall with a polished wooden floor", "on a sandy beach on a bright afternoon",
         "in a suburban backyard with a wooden fence", "in a school playground marked with painted lines",
         "on a quiet residential street on a summer evening",
         "in a floodlit stadium at night with empty stands",
         "on a college campus lawn with brick buildings behind"),
        ("a {color} team jersey and shorts", "a {color} polo shirt and white trousers",
         "a {color} training bib over a t-shirt", "a {color} sports top and a cap",
         "a {color} tracksuit", "a {color} sleeveless jersey and knee pads"),
        "The body winds up, moves explosively through the main motion and follows through, with the "
        "ball or equipment travelling clearly across the frame.", ages=ACTIVE_AGES),
    Scene(
        "combat", ("punch", "kick$", "hit$", "fight", "sword", "fencing", "karate", "kung", "tai$", "chi$",
                   "capoeira", "wrestl", "sumo", "nunchuck", "martial", "slapping", "headbutt", "arm$",
                   "shadow", "breaking$"),
        ("in a traditional dojo with tatami mats and paper screens",
         "in a martial arts gym with red mats and punching bags",
         "in a quiet city park on an early misty morning",
         "in a stone temple courtyard with old trees",
         "in a wrestling hall with a painted circle on the mat",
         "on a beach at sunset with low waves", "in a warehouse training space with concrete floors",
         "on a lit stage in front of a seated audience"),
        ("a {color} martial arts uniform with a black belt", "a {color} rash guard and fight shorts",
         "a loose {color} training shirt and trousers", "a white fencing suit and mesh mask",
         "a {color} hoodie and track pants", "a {color} sleeveless top and wraps on both hands"),
        "Fast, controlled strikes and blocks: the weight shifts between the feet, the arms and legs "
        "extend sharply and snap back to a guard.", ages=ACTIVE_AGES),
    Scene(
        "range", ("gun$", "rifle", "pistol", "archery", "bow$", "arrow", "darts", "axe$", "paintball",
                  "target"),
        ("at an outdoor archery range with straw targets on a summer day",
         "in an indoor shooting range with lit lanes and ear protection on hooks",
         "in a forest clearing with a target pinned to a hay bale",
         "on an open field with targets at different distances",
         "in a sports club hall with a row of targets", "on a dusty ranch with wooden fences",
         "at a rural range with a wooden shelter and hills behind",
         "in a medieval-themed fairground with banners"),
        ("a {color} shooting vest and ear defenders", "a {color} field jacket", "a {color} polo shirt",
         "a {color} hunting jacket and cap", "a {color} fleece", "a {color} arm guard over a t-shirt"),
        "The stance is steady and aimed: the arms raise and hold still, then the release or recoil "
        "follows in one sharp moment.", ages=("young", "middle-aged", "elderly", "young")),
    Scene(
        "athletics", ("run$", "running", "jog", "sprint", "hurdl", "jump$", "jump", "javelin", "discus",
                      "hammer$", "shotput", "pole$", "marathon", "skipping", "rope$", "hopscotch",
                "pole vault"),
        ("on a red running track in an athletics stadium", "on a forest trail covered in fallen leaves",
         "on a seaside promenade in the early morning", "on a quiet suburban road lined with trees",
         "at a training ground with a sand pit and landing mats", "in a city park with a winding path",
         "on a dusty country road between fields at sunset", "in a school sports field with white markings"),
        ("a {color} running vest and shorts", "a {color} athletics singlet",
         "a {color} windbreaker and tights",
         "a {color} t-shirt and running shorts", "a {color} track jacket",
         "a {color} sports top and leggings"),
        "The legs drive powerfully and the arms swing in time, the body leaving the ground and landing "
        "again in a clear, repeated pattern.", ages=ACTIVE_AGES),
    Scene(
        "dance", ("danc", "ballet", "salsa", "tango", "zumba", "cheerlead", "breakdanc", "krump", "jumpstyle",
                  "tap$", "moonwalk", "robot", "cumbia", "belly", "hula", "spin$", "twerk", "charleston",
                  "gangnam", "macarena", "poi$", "marching", "parade", "band$",
                "moon walk"),
        ("on a stage with coloured spotlights and a dark backdrop", "in a dance studio with a mirrored wall",
         "in a crowded ballroom with chandeliers", "on a city square at night with street lamps",
         "at a beach party with string lights at dusk", "in a living room with the furniture pushed aside",
         "in a school gym decorated for a festival", "at an outdoor festival in front of a sound system"),
        ("f:a {color} flowing dress", "a {color} shirt and black trousers", "a {color} sequined costume",
         "a {color} crop top and baggy trousers", "a {color} leotard and tights",
         "a {color} hoodie and sneakers"),
        "The body moves to a rhythm: steps and turns follow the beat, the hips and arms flow through "
        "repeated sequences.", ages=("teenage", "young", "middle-aged", "young")),
    Scene(
        "music", ("guitar", "piano", "violin", "cello", "drum", "flute", "sitar", "tabla", "daf$",
                  "dhol", "trumpet", "trombone", "saxophone", "harp", "accordion", "bagpipe", "ukulele",
                  "xylophone", "organ", "clarinet", "keyboard", "harmonica", "recorder$", "cymbal",
                  "didgeridoo", "singing", "beatbox", "recording", "music", "conducting", "bass$",
                "busking", "karaoke", "gong$", "lute$", "maracas", "ocarina", "pan pipes"),
        ("in a small music room with acoustic panels and a window",
         "on a concert stage under warm spotlights",
         "on a busy pedestrian street with passers-by", "in a cosy living room with a bookshelf",
         "in a recording studio with microphones and cables", "in a church hall with wooden pews",
         "at an outdoor garden party under a gazebo", "in a dim jazz bar with a brick wall"),
        ("a {color} shirt and dark jeans", "a {color} sweater", "m:a black suit and a {color} tie",
         "a {color} traditional embroidered tunic", "f:a {color} dress", "a {color} flannel shirt"),
        "The fingers and hands move precisely on the instrument in time with the music, the head and "
        "shoulders swaying slightly.", ages=ADULT_AGES),
    Scene(
        "grooming", ("hair", "makeup", "lipstick", "mascara", "eyebrow", "eyeliner", "teeth", "brush", "shav",
                     "wax", "nail", "beard", "haircut", "braid", "comb", "dye", "floss", "face", "massag",
                     "tattoo", "shower", "gargl", "blow$", "curling$", "eye$",
                "cream", "piercing", "contact lenses", "foundation", "sari$", "neck$", "cracking", "bandag",
                "smelling"),
        ("in a bright bathroom with white tiles and a large mirror",
         "in a bedroom at a vanity table lit by bulbs around the mirror",
         "in a hair salon with leather chairs and mirrors", "in a small hotel bathroom with a glass shower",
         "at a dressing table by a sunny window", "in a barbershop with a striped pole and tiled floor",
         "in a spa room with soft lighting and towels", "in a student dormitory room with a desk mirror"),
        ("a {color} bathrobe", "a {color} t-shirt", "f:a {color} blouse",
         "a {color} towel around the shoulders",
         "a {color} pyjama top", "a {color} salon cape"),
        "The hands make careful, repeated movements close to the head and face, the tool in hand "
        "clearly visible as it touches the hair or skin.", ages=ADULT_AGES),
    Scene(
        "kitchen", ("cook", "cut", "chop", "bak", "fry", "grill", "barbeq", "peel", "slic", "mix", "stir",
                    "scrambl", "flip", "pizza", "sandwich", "sushi", "cake", "tea$", "coffee", "salad", "eat",
                    "drink", "pour", "tast", "dining", "chew", "grind", "bread", "pancake", "burger",
                    "hotdog", "spaghetti", "ice cream", "carrot", "chips", "doughnut", "watermelon",
                    "pineapple", "apple", "orange$", "meat", "vegetable", "sausage", "egg", "bottl",
                    "bartend", "shots$", "beer", "wine", "dish", "setting$", "table$", "kitchen", "food",
                    "scallop", "blend", "juic", "bottle",
                "cheese", "pastry", "marshmallow", "roasting", "pig$", "oyster", "shucking", "sipping",
                "cup$", "grapes", "bubble gum"),
        ("in a bright home kitchen with a wooden counter", "in a busy restaurant kitchen with steel benches",
         "at a dining table by a window with morning light", "at a picnic table in a sunny garden",
         "in a small apartment kitchen with tiled walls", "at a market stall under a striped awning",
         "at a rustic farmhouse table with copper pans behind", "at a café table on a street terrace"),
        ("a {color} apron over a white shirt", "a {color} knitted jumper", "a {color} chef's jacket",
         "a {color} t-shirt", "a {color} checked shirt", "a {color} cardigan"),
        "The hands work with food, utensils and containers in small precise movements, each step of "
        "the task visible on the table or counter.", ages=ADULT_AGES),
    Scene(
        "animal", ("horse", "camel", "elephant", "mule", "dog", "cat$", "cow", "sheep", "goat", "bird",
                   "snake", "animal", "pet", "feeding", "milking", "shearing", "grooming", "bull", "herding"),
        ("on a farm with a red barn and wooden fences", "in a grassy paddock on a sunny morning",
         "on a dusty countryside track between fields", "in a city park with a pond and ducks",
         "in a tidy stable with hay bales", "on a leafy suburban pavement",
         "in a desert with sand dunes and a clear sky", "in a living room with a rug and a sofa"),
        ("a {color} flannel shirt and jeans", "a {color} waterproof jacket and boots", "a {color} gilet",
         "a {color} riding jacket and helmet", "a {color} hoodie", "a {color} overall"),
        "The person and the animal move together: hands guide, touch or hold the animal, which reacts "
        "with its own movements.", ages=ADULT_AGES),
    Scene(
        "outdoor", ("climb", "hik", "camp", "abseil", "rock$", "bungee", "skydiv", "sky$", "paraglid",
                    "hang$", "slacklin", "zipline", "kite", "garden", "plant", "mow", "rak", "dig",
                    "trimming",
                    "trees", "wood", "axe", "fire", "picking", "fruit", "watering", "harvest", "spelunk",
                    "crossing", "river", "ice$", "motorcycl", "driving", "tractor", "biking", "bike",
                    "cycling",
                    "ride$", "riding", "horse", "unicycl", "skateboard", "parkour", "roller", "scooter",
                    "segway", "hoverboard", "bmx", "snowmobil", "sled$", "swing$", "swinging",
                "bee$", "leaves", "excavation", "archaeolog", "geocach", "gold$", "panning", "foraging",
                "mushroom", "mud$", "wading", "longboard", "tightrope", "steer", "roping", "bouncy",
                "bubbles", "graffiti", "tagging", "gas$", "garbage", "docking", "laser tag", "skate boarding",
                "sky diving"),
        ("on a rocky mountain ridge under a clear sky", "in a dense green forest with dappled sunlight",
         "in a suburban backyard with a lawn and a fence", "on a winding country lane between hedges",
         "at an urban skate park with concrete ramps", "on a cliff face above a wide valley",
         "in a city street with parked cars and shop fronts", "in a desert canyon with red rock walls",
         "on a riverbank with tall reeds in the evening", "in a public park with a playground and trees"),
        ("a {color} outdoor jacket and hiking trousers", "a {color} helmet and padded jacket",
         "a {color} hoodie and jeans", "a {color} t-shirt and cargo shorts",
         "a {color} fleece and a backpack",
         "a {color} windproof shell and gloves"),
        "The whole body moves through the environment with effort and balance, hands and feet "
        "gripping, pushing or steering as the action unfolds.", ages=ACTIVE_AGES),
    Scene(
        "crafts", ("draw", "paint", "sketch", "writ", "calligraph", "knit", "sew", "embroider", "weav",
                   "origami", "fold", "wrap", "carv", "sculpt", "pottery", "jewelry", "jewellery", "glass",
                   "bookbind", "arranging", "flowers", "decorat", "colour", "color", "typing", "computer",
                   "lego", "puzzle", "card", "cards", "chess", "monopoly", "poker", "reading", "book",
                   "newspaper", "texting", "phone", "remote", "controller", "tapping", "pen$", "pencil",
                   "shredding", "ripping", "paper", "unboxing", "present", "calculat", "board$",
                "blackjack", "dominoes", "marbles", "pinball", "rubiks", "scrabble", "trains", "scrapbook",
                "felting", "needle", "leatherwork", "photocop", "microscope", "puppet", "threading",
                "knapping", "packing"),
        ("at a wooden desk by a window with afternoon light", "in a cluttered art studio with canvases",
         "at a kitchen table covered with craft materials", "in a quiet library reading room",
         "in a modern open-plan office with large monitors", "on a sofa in a cosy living room with a lamp",
         "at a classroom desk with a whiteboard behind", "in a café corner with a small round table"),
        ("a {color} cardigan", "a {color} button-up shirt", "a {color} sweatshirt",
         "f:a {color} linen blouse",
         "a {color} hoodie", "a {color} smock with paint stains"),
        "The hands work closely on a small task, fingers making fine, deliberate movements while the "
        "eyes follow the work.", ages=ADULT_AGES),
    Scene(
        "workshop", ("fix", "repair", "weld", "sand", "drill", "hammer", "saw", "build", "assembl", "plaster",
                     "brick", "tire", "tyre", "wheel", "oil", "car$", "engine", "lock", "knives", "sharpen",
                     "shining", "shoes", "mopping", "mop", "sweep", "vacuum", "clean", "iron", "laundry",
                     "washing", "folding", "moving", "furniture", "unloading", "truck", "pushing", "cart",
                     "bed$", "spray", "tying", "knot", "tie$", "bolt", "chisel", "bulldoz", "lay", "push$",
                "bending", "metal", "polishing", "carpet", "installing", "wrench", "smashing", "bagging"),
        ("in a garage workshop with tools hanging on a pegboard", "on a construction site with scaffolding",
         "in a laundry room with a washing machine and shelves", "in a tidy apartment on a wooden floor",
         "in a carpentry shop with sawdust and workbenches", "on a driveway in front of a suburban house",
         "in a warehouse with tall metal shelving", "in a hallway of a family home with a window"),
        ("a {color} boiler suit", "a {color} work shirt and jeans", "a {color} hi-vis vest over a t-shirt",
         "a {color} overall with many pockets", "a {color} sweatshirt and work gloves",
         "a {color} apron over a t-shirt"),
        "The hands and arms handle tools or objects with firm, practical movements, repeating each "
        "step until the job is done.", ages=("young", "middle-aged", "elderly", "middle-aged")),
    Scene(
        "social", ("hug", "kiss", "shak", "hands$", "talk", "laugh", "smil", "wave", "clap", "applaud",
                   "celebrat", "high$", "five$", "greet", "argu", "smok", "tickl", "cry", "yawn", "sneez",
                   "whistl", "sniff", "fist", "pointing", "nodding", "headbang", "sign$", "language",
                   "testify", "anchoring", "forecast", "presenting", "conference", "interview", "award",
                   "auction", "queue", "line$", "waiting", "acting", "play$", "smile", "stand$", "sit$",
                   "turn$", "walk$", "drool", "burp", "tongue", "snapping", "finger", "crossing$", "glasses",
                "answering", "questions", "marriage", "proposal", "huddl", "photobomb", "staring", "wink",
                "waving", "licking", "pinching", "fidget", "sleeping", "watching", "tv$", "shopping",
                "jaywalk", "directing", "traffic", "delivering", "mail$", "cosplay", "reenactment",
                "visiting", "zoo$", "atm$", "door$", "refrigerator", "inhaler", "nose$", "sucking", "lolly",
                "candles", "tiptoe", "shuffling", "falling", "chair$", "counting", "money"),
        ("in a bright living room with a sofa and plants", "at a busy train station concourse",
         "in a small café with wooden tables", "on a city sidewalk outside a row of shops",
         "in a meeting room with a long table and glass walls", "at a garden party on a summer lawn",
         "in a school corridor with lockers", "in a hotel lobby with marble floors"),
        ("a {color} shirt and chinos", "f:a {color} summer dress", "a {color} blazer over a t-shirt",
         "a {color} sweater and jeans", "a {color} hoodie", "a {color} polo shirt"),
        "The face, head and hands are expressive; the gesture builds up, peaks and relaxes, clearly "
        "visible from the waist up.", ages=ADULT_AGES),
)

GENERIC = Scene(
    "generic", (),
    ("in a bright living room with large windows", "in a city park on a sunny afternoon",
     "in a spacious gym hall with a wooden floor", "in a quiet backyard with a wooden fence",
     "on a busy city sidewalk", "in a small apartment with simple furniture",
     "on a grassy field under a cloudy sky", "in a well-lit studio with a plain grey backdrop",
     "in a garage with tools on the walls", "on a wooden deck by a lake"),
    ("a {color} t-shirt and jeans", "a {color} hoodie and joggers", "a {color} shirt and chinos",
     "a {color} jacket and trousers", "a {color} sweater", "f:a {color} dress"),
    "The movement is shown clearly from start to finish, the body, hands and any objects involved "
    "in full view.",
)

# Hair by age group (elderly people get greys); beards are added to some men.
HAIR_YOUNG = ("short black hair", "long blonde hair in a ponytail", "curly red hair", "a shaved head",
              "shoulder-length brown hair", "braided black hair", "a short afro", "wavy auburn hair",
              "a buzz cut", "dark hair in a high bun", "long straight black hair", "messy sandy hair",
              "bleached short hair", "dreadlocks tied back", "a brown bob", "cropped dark curls")
HAIR_OLD = ("short grey hair", "thinning white hair", "a bald head", "a silver bob", "swept-back grey hair",
            "white hair in a bun", "salt-and-pepper hair", "short white curls")
SKINS = ("fair skin", "pale skin", "olive skin", "light brown skin", "tan skin", "brown skin",
         "dark brown skin", "deep brown skin")
BUILDS = ("slim", "tall", "short", "stocky", "muscular", "heavyset", "wiry", "broad-shouldered", "lanky",
          "petite")
AGE_NOUNS = {
    "teenage": ("teenage boy", "teenage girl"),
    "young": ("young man", "young woman"),
    "middle-aged": ("middle-aged man", "middle-aged woman"),
    "elderly": ("elderly man", "elderly woman"),
}
