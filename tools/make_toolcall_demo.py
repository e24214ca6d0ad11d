"""Write ``core/src/ft_core/demo_data/toolcall_demo.json``: a deterministic tool-calling demo set (sharegpt with
``tools``, ``function_call`` and ``observation`` turns, as LLaMA-Factory reads it) and ``demo_tools.json``, the
schemas of its functions (for ``ft-core chat --tools``).

Rows ask for the weather, a currency conversion or the local time of a city (the model must call the right
function with the right arguments, then answer from the observation); some rows need no tool (it must answer
directly), and some continue the conversation after the call.

    python tools/make_toolcall_demo.py
"""

from __future__ import annotations

import json
import random
from pathlib import Path

OUT = Path(__file__).resolve().parents[1] / "core" / "src" / "ft_core" / "demo_data"

TOOLS = [
    {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
    {
        "name": "convert_currency",
        "description": "Convert an amount of money from one currency to another.",
        "parameters": {
            "type": "object",
            "properties": {
                "amount": {"type": "number", "description": "Amount to convert"},
                "from": {"type": "string", "description": "ISO code of the source currency"},
                "to": {"type": "string", "description": "ISO code of the target currency"},
            },
            "required": ["amount", "from", "to"],
        },
    },
    {
        "name": "get_time",
        "description": "Get the current local time in a city.",
        "parameters": {
            "type": "object",
            "properties": {"city": {"type": "string", "description": "City name"}},
            "required": ["city"],
        },
    },
]

CITIES = [
    "Paris",
    "Lisbon",
    "Tokyo",
    "Nairobi",
    "Lima",
    "Oslo",
    "Cairo",
    "Sydney",
    "Toronto",
    "Madrid",
    "Berlin",
    "Seoul",
    "Mumbai",
    "Dublin",
    "Rome",
    "Vienna",
]
CURRENCIES = {"EUR": "euros", "USD": "US dollars", "GBP": "pounds", "JPY": "yen", "CHF": "Swiss francs"}
RATES = {"EUR": 1.0, "USD": 1.08, "GBP": 0.85, "JPY": 162.0, "CHF": 0.95}
SKIES = ["sunny", "cloudy", "rainy", "windy", "foggy", "snowy"]
DIRECT = [
    ("What is the capital of Canada?", "The capital of Canada is Ottawa."),
    ("How many days are in a leap year?", "A leap year has 366 days."),
    ("Say hello in Spanish.", "Hola!"),
    ("What is 12 times 12?", "12 times 12 is 144."),
    ("Who wrote Hamlet?", "Hamlet was written by William Shakespeare."),
    ("What colour is the sky on a clear day?", "On a clear day the sky is blue."),
    ("Name a primary colour.", "Red is a primary colour."),
    ("What is the boiling point of water at sea level?", "Water boils at 100 °C at sea level."),
]


def _turn(role: str, value: object) -> dict[str, str]:
    return {"from": role, "value": value if isinstance(value, str) else json.dumps(value, ensure_ascii=False)}


def _weather(rng: random.Random) -> list[dict[str, str]]:
    city = rng.choice(CITIES)
    temperature, sky = rng.randint(-5, 35), rng.choice(SKIES)
    question = rng.choice(
        ["What's the weather in {c}?", "How is the weather in {c} right now?", "Is it warm in {c} today?"]
    )
    return [
        _turn("human", question.format(c=city)),
        _turn("function_call", {"name": "get_weather", "arguments": {"city": city}}),
        _turn("observation", {"temperature_c": temperature, "condition": sky}),
        _turn("gpt", f"It is {sky} in {city}, with a temperature of {temperature} °C."),
    ]


def _currency(rng: random.Random) -> list[dict[str, str]]:
    source, target = rng.sample(sorted(CURRENCIES), 2)
    amount = rng.choice([5, 10, 20, 50, 100, 250, 1000])
    result = round(amount * RATES[target] / RATES[source], 2)
    question = rng.choice(["How much is {a} {s} in {t}?", "Convert {a} {s} to {t}, please."])
    return [
        _turn("human", question.format(a=amount, s=CURRENCIES[source], t=CURRENCIES[target])),
        _turn(
            "function_call",
            {"name": "convert_currency", "arguments": {"amount": amount, "from": source, "to": target}},
        ),
        _turn("observation", {"result": result, "currency": target}),
        _turn("gpt", f"{amount} {CURRENCIES[source]} is about {result} {CURRENCIES[target]}."),
    ]


def _time(rng: random.Random) -> list[dict[str, str]]:
    city = rng.choice(CITIES)
    hour, minute = rng.randint(0, 23), rng.choice([0, 15, 30, 45])
    return [
        _turn(
            "human", rng.choice(["What time is it in {c}?", "Tell me the local time in {c}."]).format(c=city)
        ),
        _turn("function_call", {"name": "get_time", "arguments": {"city": city}}),
        _turn("observation", {"time": f"{hour:02d}:{minute:02d}"}),
        _turn("gpt", f"It is {hour:02d}:{minute:02d} in {city} right now."),
    ]


def rows(count: int = 96, seed: int = 7) -> list[dict[str, object]]:
    """``count`` rows: three in four call a tool, one in four is answered directly; some continue afterwards."""
    rng = random.Random(seed)
    makers = [_weather, _currency, _time]
    result = []
    for index in range(count):
        if index % 4 == 3:
            question, answer = DIRECT[(index // 4) % len(DIRECT)]
            turns = [_turn("human", question), _turn("gpt", answer)]
        else:
            turns = makers[index % 3](rng)
            if index % 8 == 1:
                question, answer = rng.choice(DIRECT)
                turns += [_turn("human", question), _turn("gpt", answer)]
        result.append({"conversations": turns, "tools": json.dumps(TOOLS, ensure_ascii=False)})
    return result


def main() -> None:
    (OUT / "toolcall_demo.json").write_text(
        json.dumps(rows(), ensure_ascii=False, indent=2) + "\n", encoding="utf-8"
    )
    (OUT / "demo_tools.json").write_text(json.dumps(TOOLS, indent=2) + "\n", encoding="utf-8")


if __name__ == "__main__":
    main()
