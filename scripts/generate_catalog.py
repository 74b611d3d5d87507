"""Regenerate the bundled estate-planning catalog (asset_pipeline/catalog/data/estate_planning.yaml).

The catalog is written once by this script and then edited by hand like any content file; the
script documents how its ~490 entries were composed (subjects x settings per category, with sizes
that suit each use on the website) and rebuilds it deterministically.

    python scripts/generate_catalog.py > asset_pipeline/catalog/data/estate_planning.yaml
"""

from __future__ import annotations

import itertools
import re
import sys

import yaml

# category: (width, height, steps, style tags, subjects, settings, count)
HERO_SUBJECTS = [
    "a multigenerational family walking along a tree-lined path at golden hour",
    "an older couple reviewing plans on a sunlit porch",
    "a grandmother handing a family heirloom to her granddaughter",
    "a young couple with a baby in a bright modern kitchen",
    "a calm advisor's office overlooking a city park",
    "an oak tree with deep roots spreading under a meadow",
    "hands of three generations stacked on a wooden table",
    "a family home at dusk with warm light in the windows",
    "a couple on a bench by a lake planning their retirement",
    "a father teaching his daughter to ride a bike in a quiet street",
]
HERO_SETTINGS = ["soft morning light", "warm autumn palette", "clean spring tones", "gentle evening glow"]

SECTION_SUBJECTS = [
    "a last will and testament with a fountain pen",
    "a living trust binder on a desk",
    "power of attorney paperwork being signed",
    "a healthcare directive discussed with a doctor",
    "guardianship planning for young children",
    "probate court steps explained on a wall chart",
    "beneficiary designations on a retirement account",
    "a family meeting about inheritance around a dining table",
    "charitable giving planned with a donor-advised fund",
    "digital assets and passwords stored in a secure vault",
    "a small business succession plan on a whiteboard",
    "life insurance policy paperwork in a folder",
    "a special needs trust protecting a loved one",
    "estate tax planning with a calculator and ledger",
    "a pet trust with a golden retriever beside a family",
]
SECTION_SETTINGS = ["flat vector illustration", "isometric illustration", "soft watercolor illustration",
                    "line art with one accent color", "paper-cut collage", "muted editorial illustration"]

ICON_SUBJECTS = [
    "a scroll with a wax seal", "a house with a key", "a shield with a heart", "a family tree",
    "a signed document", "a calendar with a checkmark", "a piggy bank", "a gavel",
    "a handshake", "a lock and key", "a medical cross with a clipboard", "a gift box",
    "a briefcase", "a padlocked folder", "a pen signing a line", "a balance scale",
    "a compass", "an hourglass", "a lighthouse", "a leaf sprouting from coins",
    "a graduation cap", "a wedding ring", "a paw print with a heart", "a cloud with a lock",
    "a chat bubble with a question mark", "a phone with a calendar", "a folder tree", "a stamp",
    "a magnifying glass over a document", "an umbrella over a house",
]
ICON_SETTINGS = ["outlined icon, navy on white", "filled icon, teal on white",
                 "duotone icon, green and gold", "rounded glyph icon, slate blue"]

BACKGROUND_SUBJECTS = [
    "subtle linen paper texture", "soft gradient of dawn colors", "faint topographic lines",
    "blurred bookshelf bokeh", "light marble surface", "watercolor wash of sage and cream",
    "gentle geometric pattern of interlocking circles", "quiet forest canopy from below",
    "abstract flowing ribbons", "aerial view of farmland in mist",
]
BACKGROUND_SETTINGS = ["very low contrast, room for text", "pale and airy", "deep navy tones", "warm neutral tones"]

FAMILY_SUBJECTS = [
    "grandparents reading to grandchildren on a sofa",
    "a blended family cooking dinner together",
    "adult siblings looking through an old photo album",
    "a single mother planning with her teenage son at a laptop",
    "a same-sex couple adopting a child, smiling in a sunny living room",
    "a family gathered at a holiday table",
    "an elderly man gardening with his grandson",
    "newlyweds moving boxes into their first home",
    "a caregiver helping an aging parent with paperwork",
    "a family picnic in a park with a dog",
    "cousins playing in the backyard while parents talk",
    "a widow sorting letters at a kitchen table",
    "a young family reading a bedtime story",
    "parents watching their daughter graduate",
]
FAMILY_SETTINGS = ["documentary photography style", "warm cinematic photograph", "candid natural light photo",
                   "soft illustrated portrait", "editorial lifestyle photograph"]

ADVISOR_SUBJECTS = [
    "an estate attorney explaining a trust to a couple",
    "a financial advisor on a video call with a client",
    "a notary stamping documents for an elderly woman",
    "a paralegal organizing client files",
    "an advisor sketching a family tree diagram for clients",
    "a consultation in a bright glass-walled meeting room",
    "an attorney shaking hands with a retired veteran",
    "an advisor walking a family through a checklist on a tablet",
    "a mediator helping siblings agree on an inheritance",
    "a planner reviewing documents with a small-business owner",
]
ADVISOR_SETTINGS = ["professional photograph, shallow depth of field", "friendly illustrated scene",
                    "corporate editorial photograph", "soft pastel illustration", "natural office light photo"]

DOCUMENT_SUBJECTS = [
    "close-up of a signature line on a will", "a notary seal embossed on paper",
    "a trust deed with a brass paperclip", "a property title with reading glasses",
    "a sealed envelope marked 'to be opened by my executor'",
    "a checklist of estate documents with ticks", "a handwritten letter of wishes",
    "a safe deposit box key on documents", "an insurance policy with a highlighted clause",
    "a medical directive form with a stethoscope",
]
DOCUMENT_SETTINGS = ["macro photograph", "top-down flat lay", "soft focus still life", "studio lighting still life",
                     "vintage film photograph"]

INFOGRAPHIC_SUBJECTS = [
    "steps of the probate process", "how a revocable trust works", "who needs a will",
    "the estate planning checklist", "timeline of settling an estate", "roles of executor and trustee",
    "what happens without a will", "comparison of will and trust", "choosing a guardian",
    "updating your plan after life events",
]
INFOGRAPHIC_SETTINGS = ["clean infographic art without text, icons and arrows",
                        "minimal infographic background art without text",
                        "playful infographic illustration without text"]

CATEGORIES = [
    # id prefix, category, width, height, steps, guidance, style, subjects, settings, count
    ("hero", "hero", 1344, 768, 30, 6.5, ["website hero", "high detail"], HERO_SUBJECTS, HERO_SETTINGS, 40),
    ("section", "section", 1152, 896, 28, 7.0, ["editorial"], SECTION_SUBJECTS, SECTION_SETTINGS, 90),
    ("icon", "icon", 512, 512, 20, 7.5, ["simple", "centered", "plain background"], ICON_SUBJECTS, ICON_SETTINGS, 120),
    ("background", "background", 1536, 640, 24, 5.0, ["seamless", "minimal"], BACKGROUND_SUBJECTS, BACKGROUND_SETTINGS, 40),
    ("family", "family-scene", 1216, 832, 30, 6.5, ["diverse", "authentic"], FAMILY_SUBJECTS, FAMILY_SETTINGS, 70),
    ("advisor", "advisor-scene", 1216, 832, 30, 6.5, ["trustworthy", "professional"], ADVISOR_SUBJECTS, ADVISOR_SETTINGS, 50),
    ("document", "document", 1024, 1024, 28, 7.0, ["sharp focus"], DOCUMENT_SUBJECTS, DOCUMENT_SETTINGS, 50),
    ("infographic", "infographic", 896, 1152, 24, 7.0, ["flat design", "brand colors navy teal gold"], INFOGRAPHIC_SUBJECTS, INFOGRAPHIC_SETTINGS, 30),
]

NEGATIVE = {
    "icon": "photo, text, watermark, clutter, shadows",
    "background": "text, people, faces, logos, high contrast",
    "infographic": "text, letters, numbers, watermark",
}


def slug(text: str, limit: int = 48) -> str:
    words = re.sub(r"[^a-z0-9]+", "-", text.lower()).strip("-").split("-")
    words = [w for w in words if w not in {"a", "an", "the", "of", "with", "on", "in", "at", "and", "to", "by"}]
    out = ""
    for word in words:
        if len(out) + len(word) + 1 > limit:
            break
        out = f"{out}-{word}" if out else word
    return out


def entries():
    for prefix, category, width, height, steps, guidance, style, subjects, settings, count in CATEGORIES:
        combos = itertools.islice(itertools.cycle(itertools.product(settings, subjects)), count)
        for number, (setting, subject) in enumerate(combos, start=1):
            entry = {
                "id": f"{prefix}-{number:03d}-{slug(subject, 40)}",
                "category": category,
                "prompt": f"{subject}, {setting}",
                "width": width,
                "height": height,
                "seed": 10_000 * (CATEGORIES.index(next(c for c in CATEGORIES if c[0] == prefix)) + 1) + number,
                "steps": steps,
                "guidance": guidance,
                "style": list(style),
            }
            if category in NEGATIVE:
                entry["negative_prompt"] = NEGATIVE[category]
            yield entry


def main() -> None:
    document = {
        "defaults": {"negative_prompt": "blurry, distorted hands, watermark, text artifacts, lowres"},
        "images": list(entries()),
    }
    sys.stdout.write("# Estate-planning website illustrations. Generated by scripts/generate_catalog.py;\n")
    sys.stdout.write("# edit freely: each entry is one partition of the `images` asset.\n")
    yaml.dump(document, sys.stdout, Dumper=_NoAliasDumper, sort_keys=False, width=120, allow_unicode=True)


class _NoAliasDumper(yaml.SafeDumper):
    def ignore_aliases(self, data):  # every entry spells out its own style list
        return True


if __name__ == "__main__":
    main()
