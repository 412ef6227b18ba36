"""Synthetic skills for the demo: sentiment labelling, addition, JSON records, and the new
target behaviour, extracting {name, city} as JSON from a sentence."""

from __future__ import annotations

import json
import random

__all__ = [
    "CITIES",
    "NAMES",
    "extraction",
    "json_record",
    "sentiment",
    "uppercase",
]

NAMES = [
    "Ana",
    "Bruno",
    "Carla",
    "Diego",
    "Elena",
    "Farid",
    "Greta",
    "Hugo",
    "Ines",
    "Jonas",
    "Kira",
    "Luis",
    "Maya",
    "Nils",
    "Olga",
    "Pablo",
    "Quinn",
    "Rosa",
    "Sven",
    "Tara",
    "Umar",
    "Vera",
    "Wim",
    "Xena",
    "Yusuf",
    "Zoe",
]
CITIES = [
    "Porto",
    "Lyon",
    "Berlin",
    "Oslo",
    "Rome",
    "Quito",
    "Lima",
    "Cairo",
    "Dublin",
    "Kyoto",
    "Seoul",
    "Paris",
    "Vienna",
    "Madrid",
    "Prague",
    "Riga",
    "Tunis",
    "Accra",
    "Hanoi",
    "Lagos",
]
TEMPLATES = [
    "{name} lives in {city}.",
    "{name} moved to {city} last year.",
    "In {city}, {name} runs a small cafe.",
    "{name} was born in {city}.",
    "Yesterday {name} flew to {city}.",
    "{name} works in {city} now.",
]
POSITIVE = ["great", "lovely", "tasty", "friendly", "fast", "superb"]
NEGATIVE = ["awful", "cold", "rude", "slow", "dirty", "bland"]
NEUTRAL = ["okay", "average", "plain", "normal"]
NOUNS = ["soup", "staff", "room", "service", "pasta", "coffee", "bed", "view"]
KEYS = ["color", "size", "pet", "food", "name", "city"]
VALUES = [
    "red",
    "blue",
    "small",
    "large",
    "cat",
    "dog",
    "rice",
    "saw",
    "green",
    "soup",
    *NAMES[::2],
    *CITIES[::2],
]


def sentiment(rng: random.Random) -> tuple[str, str]:
    """('the soup was tasty', 'positive')"""
    label = rng.choice(["positive", "negative", "neutral"])
    words = {"positive": POSITIVE, "negative": NEGATIVE, "neutral": NEUTRAL}[label]
    return f"the {rng.choice(NOUNS)} was {rng.choice(words)}", label


WORDS = [
    "apple",
    "river",
    "stone",
    "cloud",
    "green",
    "music",
    "table",
    "light",
    "bread",
    "chair",
    "ocean",
    "tiger",
    "plant",
    "sugar",
    "house",
    "smile",
    "train",
    "glass",
    "paper",
    "storm",
    "candle",
    "forest",
    "garden",
    "pencil",
    "rocket",
    "silver",
]


def uppercase(rng: random.Random) -> tuple[str, str]:
    """('river', 'RIVER')"""
    word = rng.choice(WORDS)
    return word, word.upper()


def json_record(rng: random.Random) -> tuple[str, str]:
    """('pet cat size small', '{"pet": "cat", "size": "small"}')"""
    keys = rng.sample(KEYS, 2)
    values = [rng.choice(VALUES) for _ in keys]
    text = " ".join(f"{k} {v}" for k, v in zip(keys, values, strict=True))
    return text, json.dumps(dict(zip(keys, values, strict=True)))


def extraction(rng: random.Random) -> tuple[str, dict[str, str]]:
    """('Ana lives in Porto.', {'name': 'Ana', 'city': 'Porto'})"""
    name, city = rng.choice(NAMES), rng.choice(CITIES)
    return rng.choice(TEMPLATES).format(name=name, city=city), {"name": name, "city": city}
