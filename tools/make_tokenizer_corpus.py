#!/usr/bin/env python3
"""Builds the tokenizer parity corpus: tests/data/tokenizer/corpus.jsonl, one JSON string per line.

Deterministic (fixed seed, no dependence on the environment except the GSM8K file). Covers many scripts and
languages, code, emoji (ZWJ sequences, flags, skin tones, keycaps), whitespace runs (tabs, newlines, \\r\\n, long
space runs), special tokens of the Gemma 3 and Gemma 4 files inside text, characters that need byte fallback (rare
CJK, private use, control characters), the empty string, very long strings and GSM8K samples.

usage: make_tokenizer_corpus.py [--gsm8k PATH] [--out PATH]
"""
import argparse
import json
import os
import random

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)

LANGS = [
    "The quick brown fox jumps over the lazy dog.",
    "Hello, world! How are you doing today?",
    "Portez ce vieux whisky au juge blond qui fume. L'été dernier, j'ai visité Montréal.",
    "Falsches Üben von Xylophonmusik quält jeden größeren Zwerg. Straße, Maß, Fußgänger.",
    "El veloz murciélago hindú comía feliz cardillo y kiwi. ¿Dónde está la biblioteca? ¡Olé!",
    "Ma la volpe col suo balzo ha raggiunto il quieto Fido. Perché? Così è.",
    "À noite, vovô Kowalsky vê o ímã cair no pé do pinguim queixoso e vovó põe açúcar no chá.",
    "Zażółć gęślą jaźń. Pchnąć w tę łódź jeża lub ośm skrzyń fig.",
    "Příliš žluťoučký kůň úpěl ďábelské ódy.",
    "Árvíztűrő tükörfúrógép. Öt szép szűz lány őrült írót nyúz.",
    "Pijamalı hasta yağız şoföre çabucak güvendi. İstanbul'da ılık bir gün.",
    "Съешь же ещё этих мягких французских булок, да выпей чаю. Ёжик в тумане.",
    "Чуєш їх, доцю, га? Кумедна ж ти, прощайся без ґольфів!",
    "Ξεσκεπάζω την ψυχοφθόρα βδελυγμία. Γειά σου Κόσμε!",
    "ქართული ენა მსოფლიოში ერთ-ერთი უძველესი ენაა.",
    "Հայերենը հնդեվրոպական լեզվաընտանիքի առանձին ճյուղ է։",
    "صِف خَلقَ خَودِ كَمِثلِ الشَمسِ إِذ بَزَغَت. مرحبا بالعالم!",
    "דג סקרן שט בים מאוכזב ולפתע מצא חברה. שלום עולם",
    "ऋषियों को सताने वाले दुष्ट राक्षसों के राजा रावण का सर्वनाश करने वाले विष्णुवतार भगवान श्रीराम।",
    "আমি বাংলায় গান গাই। নমস্কার পৃথিবী!",
    "யாமறிந்த மொழிகளிலே தமிழ்மொழி போல் இனிதாவது எங்கும் காணோம்.",
    "తెలుగు భాష చాలా అందమైనది. నమస్కారం!",
    "ಕನ್ನಡ ಒಂದು ದ್ರಾವಿಡ ಭಾಷೆ.",
    "മലയാളം ഒരു ദ്രാവിഡ ഭാഷയാണ്.",
    "ਪੰਜਾਬੀ ਭਾਸ਼ਾ ਗੁਰਮੁਖੀ ਲਿਪੀ ਵਿੱਚ ਲਿਖੀ ਜਾਂਦੀ ਹੈ।",
    "ગુજરાતી ભાષા ઇન્ડો-આર્યન ભાષા છે.",
    "සිංහල භාෂාව ශ්‍රී ලංකාවේ භාෂාවකි.",
    "นายสังฆภัณฑ์ เฮงพิทักษ์ฝั่ง ผู้เฒ่าซึ่งมีอาชีพเป็นฅนขายฃวด ถูกตำรวจปฏิบัติการจับฟ้องศาล",
    "ພາສາລາວແມ່ນພາສາທາງການຂອງລາວ.",
    "ភាសាខ្មែរជាភាសាផ្លូវការនៃប្រទេសកម្ពុជា។",
    "မြန်မာဘာသာစကားသည် တိဘက်-မြန်မာ ဘာသာစကားမိသားစုဝင် ဖြစ်သည်။",
    "我能吞下玻璃而不伤身体。天地玄黄，宇宙洪荒。日月盈昃，辰宿列张。",
    "繁體中文與簡體中文並存。臺灣、香港、澳門使用繁體字。",
    "いろはにほへと ちりぬるを わかよたれそ つねならむ。東京は日本の首都です。",
    "カタカナとひらがなと漢字を混ぜて書きます。ｶﾀｶﾅ半角もあります。",
    "키스의 고유조건은 입술끼리 만나야 하고 특별한 기술은 필요치 않다. 안녕하세요, 세계!",
    "Tiếng Việt có dấu: Trăm năm trong cõi người ta, chữ tài chữ mệnh khéo là ghét nhau.",
    "Kiswahili ni lugha ya Kibantu inayozungumzwa Afrika Mashariki.",
    "Yorùbá jẹ́ èdè tí wọ́n ń sọ ní apá ìwọ̀-oòrùn Áfíríkà.",
    "አማርኛ የኢትዮጵያ የሥራ ቋንቋ ነው።",
    "ᐃᓄᒃᑎᑐᑦ ᐅᖃᐅᓯᖅ",
    "ᏣᎳᎩ ᎦᏬᏂᎯᏍᏗ",
    "ܠܫܢܐ ܣܘܪܝܝܐ",
    "ދިވެހި ބަސް",
    "བོད་ཡིག་ནི་བོད་ཀྱི་ཡི་གེ་ཡིན།",
    "Монгол хэл нь Монгол улсын албан ёсны хэл юм.",
    "Þú ert fallegur. Ærið, Ægir, öðlingur.",
    "Lietuvių kalba yra baltų kalba. Latviešu valoda ir baltu valoda.",
    "Eesti keel on soome-ugri keel. Õun, äär, öö, üks.",
    "Gaeilge: Is í an Ghaeilge teanga náisiúnta na hÉireann.",
    "Cymraeg: Mae'r iaith Gymraeg yn iaith Geltaidd.",
    "Esperanto: Eĥoŝanĝo ĉiuĵaŭde.",
    "Math: ∀x∈ℝ, ∃y: x² + y² ≥ 2xy; ∫₀^∞ e^{-x²} dx = √π/2; ∑ᵢ aᵢ ≤ ∏ⱼ bⱼ; α→β ⇒ ¬γ ∨ δ.",
    "Fullwidth: ＡＢＣ１２３！？ and ligatures: ﬁ ﬂ ﬀ ﬃ; superscripts: x¹²³ and ½ ¾ ⅓.",
    "Typographic quotes: “double” ‘single’ «guillemets» „German“ — em dash – en dash … ellipsis • bullet",
    "Currency: $100, €50, £30, ¥1000, ₹500, ₿0.01, ₩10000, ₽99.",
    "Box drawing: ┌─┬─┐ │ │ │ ├─┼─┤ └─┴─┘ ░▒▓█ ▲▼◆●★☆♠♣♥♦",
]

CODE = [
    "def fib(n):\n    if n < 2:\n        return n\n    return fib(n - 1) + fib(n - 2)\n",
    "#include <iostream>\nint main() {\n\tstd::cout << \"Hello\" << std::endl;\n\treturn 0;\n}\n",
    "for (int i = 0; i < n; ++i) { a[i] += b[i] * c[i]; }  // saxpy-ish",
    "const f = async (x) => { await fetch(`/api/${x}`); return x?.y ?? 0; };",
    "SELECT id, name FROM users WHERE age >= 18 AND name LIKE '%son' ORDER BY id DESC;",
    "{\"key\": [1, 2, 3], \"nested\": {\"a\": null, \"b\": true, \"c\": \"\\u00e9\"}}",
    "<html>\n<body>\n<table><tr><td>cell</td><th>head</th></tr></table>\n<div class=\"x\"><span>hi</span></div>\n</body>\n</html>",
    "<h1>Title</h1><p>Para with <b>bold</b>, <i>italic</i>, <code>code</code>, <a href='#'>link</a>.</p>",
    "#!/bin/bash\nset -euo pipefail\nfor f in *.txt; do\n  echo \"$f\" | tr a-z A-Z >> out.log\ndone\n",
    "fn main() {\n    let v: Vec<u32> = (0..10).map(|x| x * x).collect();\n    println!(\"{:?}\", v);\n}",
    "    indented with four spaces\n\tindented with a tab\n        eight spaces\n\t\t\ttabs",
    "x = [i**2 for i in range(10) if i % 2 == 0]  # list comprehension\r\nprint(x)\r\n",
    "struct Point { float x, y; };\nauto p = Point{1.0f, -2.5e-3f};\n",
    "regex: ^(?:[a-z0-9!#$%&'*+/=?^_`{|}~-]+(?:\\.[a-z0-9!#$%&'*+/=?^_`{|}~-]+)*)$",
    "LaTeX: \\frac{a}{b} + \\sqrt{x^2 + y^2} = \\sum_{i=1}^{n} \\alpha_i \\cdot \\beta_i",
    "Markdown: # Heading\n\n* item 1\n* item 2\n\n```python\nprint('hi')\n```\n\n| a | b |\n|---|---|\n| 1 | 2 |",
    "URL: https://example.com/path/to/page?query=1&lang=en#section-2 and email: user.name+tag@example.co.uk",
    "0123456789 3.14159265358979 -42 1e10 0x1F 0b1011 1,000,000 12:34:56 2024-01-31",
]

EMOJI = [
    "👨‍👩‍👧‍👦", "👩‍💻", "🏳️‍🌈", "🏴‍☠️", "👍🏽", "👋🏿", "🇫🇷🇯🇵🇺🇸", "1️⃣2️⃣#️⃣", "❤️", "🧑🏾‍🚀",
    "😀😃😄😁😆😅😂🤣", "🙈🙉🙊", "🐶🐱🐭🐹🐰🦊🐻🐼", "🍎🍐🍊🍋🍌🍉🍇🍓", "⚽🏀🏈⚾🎾🏐", "🤷‍♀️🤦‍♂️",
    "👩‍❤️‍💋‍👨", "🫠🫡🫢🫣", "🏴󠁧󠁢󠁳󠁣󠁴󠁿", "☺︎ vs ☺️", "I ❤️ NY 🗽!",
]

WHITESPACE = [
    " ", "  ", "   ", "\t", "\n", "\r\n", "\r", "\n\n", "\n\n\n", " \n ", "\t\t\t", " \t \t ",
    "a  b", "a   b", "a\tb", "a\nb", "a\r\nb", "a \n b", " leading space", "trailing space ", "  both  ",
    "line1\nline2\n\nline4\n\n\nline7", "win\r\nline\r\nendings\r\n", "mixed \t\n\r\n \t whitespace",
    " " * 31, " " * 32, " " * 33, " " * 64, " " * 100, "\n" * 31, "\n" * 32, "\n" * 45, "\t" * 31,
    "\t" * 40, "x" + " " * 50 + "y", "\u00a0non-breaking\u00a0space", "\u3000ideographic\u3000space",
    "thin\u2009space and\u200bzero width", "\u2028line sep\u2029para sep", "\u0085next line",
    "\u00a0", "\u2003\u2002\u2001", "\f form feed \v vertical tab",
]

SPECIALS_G3 = ["<bos>", "<eos>", "<pad>", "<unk>", "<mask>", "[multimodal]", "<start_of_turn>", "<end_of_turn>",
               "<start_of_image>", "<end_of_image>", "<image_soft_token>", "<unused0>", "<unused40>",
               "<unused99>", "<unused6241>", "<table>", "</table>", "<tr>", "<td>", "<h1>", "<b>", "</b>",
               "<code>", "<div>", "</footer>"]
SPECIALS_G4 = ["<|turn>", "<turn|>", "<|image|>", "<|audio|>", "<|video|>", "<|image>", "<image|>", "<|audio>",
               "<audio|>", "<|tool>", "<tool|>", "<|tool_call>", "<tool_call|>", "<|tool_response>",
               "<tool_response|>", '<|"|>', "<|think|>", "<|channel>", "<channel|>"]
NEAR_SPECIALS = ["<bos", "bos>", "<<bos>>", "<start_of_turn", "<|turn", "turn|>", "<|image", "<|\"|", "< bos>",
                 "<BOS>", "<unused>", "<unused-1>", "<0x41>", "<0x0A>", "<0xZZ>", "▁", "▁▁", "▁▁▁▁", "▁x▁",
                 "<s>", "</s>", "<|endoftext|>", "<start_of_turn><end_of_turn>", "<bos><bos><eos>"]

BYTE_FALLBACK = [
    "\U00020000", "\U0002A6A5", "\U0002B740", "\U0003134A", "𠜎𠜱𠝹𠱓", "\ue000\ue001\uf8ff", "\U000F0000\U0010FFFD",
    "\x00", "\x01\x02\x03", "\x07bell", "\x1b[31mred\x1b[0m", "\x7f", "\x80\x9f", "\ufeffBOM", "\ufffd", "\uffff",
    "a\u0301e\u0301", "Z̤͔ͧ̑̓ä͖̭̈̇lͮ̒ͫǧ̗͚̚o̙̔ͮ̇͐̇", "\U0001D400\U0001D41A\U0001D7CE", "\U0001F8FF", "\u2FF0\u31C0",
    "\U00013000\U00013001", "\U00010400\U00010401", "ꙮ", "ᚠᛇᚻ᛫ᛒᛦᚦ", "\U0001F9FF\U0001FAF8",
]


def gsm8k_texts(path, n):
    out = []
    if not os.path.exists(path):
        raise SystemExit(f"make_tokenizer_corpus: {path} not found (pass --gsm8k)")
    with open(path, encoding="utf-8") as f:
        for i, line in enumerate(f):
            if i >= n:
                break
            rec = json.loads(line)
            out.append(rec["question"])
            out.append(rec["answer"])
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--gsm8k", default="/work/shared/data/gsm8k/train.jsonl")
    ap.add_argument("--out", default=os.path.join(ROOT, "tests/data/tokenizer/corpus.jsonl"))
    args = ap.parse_args()
    rng = random.Random(20240531)

    corpus = [""]
    corpus += LANGS + CODE + EMOJI + WHITESPACE + BYTE_FALLBACK
    specials = SPECIALS_G3 + SPECIALS_G4 + NEAR_SPECIALS
    for s in specials:  # alone, inside text, glued to words, with spaces around
        corpus += [s, f"Hello {s} world", f"x{s}y", f"{s}\n", f" {s} ", f"{s}{s}"]
    corpus.append("<start_of_turn>user\nHi there<end_of_turn>\n<start_of_turn>model\nHello!<end_of_turn>\n")
    corpus.append("<bos><|turn>user\nHi<turn|>\n<|turn>model\n<|channel>thought\n<channel|>")
    corpus.append('<|tool_call>call:get_weather{city:<|"|>Paris<|"|>}<tool_call|><|tool_response>')
    corpus.append("Look: <|image|> and listen: <|audio|> then watch <|video|>.")
    # Every printable ASCII character alone, and single characters across the BMP and beyond.
    corpus += [chr(c) for c in range(1, 128)]
    corpus += [chr(c) for c in range(0xA0, 0x30000, 211) if not 0xD800 <= c < 0xE000]

    pieces = LANGS + CODE + EMOJI + WHITESPACE + BYTE_FALLBACK + specials
    gsm = gsm8k_texts(args.gsm8k, 400)
    corpus += gsm
    # Random mixtures of everything above, joined by random separators.
    seps = ["", " ", "  ", "\n", "\t", "\r\n", " \n", "▁", ". ", "\n\n"]
    for _ in range(900):
        k = rng.randint(1, 6)
        parts = [rng.choice(pieces if rng.random() < 0.8 else gsm) for _ in range(k)]
        if rng.random() < 0.5:  # cut a random part at a random character
            j = rng.randrange(k)
            p = parts[j]
            a = rng.randrange(len(p) + 1)
            parts[j] = p[a:a + rng.randint(1, 80)]
        corpus.append("".join(p + rng.choice(seps) for p in parts))
    # Random character soups (letters of many scripts, digits, punctuation, whitespace, emoji, specials).
    alphabet = sorted(set("".join(LANGS + CODE + EMOJI + BYTE_FALLBACK)))
    for _ in range(150):
        n = rng.randint(1, 120)
        corpus.append("".join(rng.choice(alphabet) for _ in range(n)))
    # Very long strings.
    corpus.append(" ".join(gsm[:60]))
    corpus.append("".join(rng.choice(LANGS) for _ in range(40)))
    corpus.append(LANGS[31] * 60)  # one long CJK run with no spaces: one huge BPE word
    corpus.append(" " * 5000)
    corpus.append("\n" * 3000)
    corpus.append("ab" * 4000)
    corpus.append("1234567890" * 500)
    corpus.append("".join(rng.choice(specials) + rng.choice(seps) for _ in range(500)))

    with open(args.out, "w", encoding="utf-8") as f:
        for s in corpus:
            f.write(json.dumps(s, ensure_ascii=False) + "\n")
    print(f"{len(corpus)} strings, {sum(len(s.encode()) for s in corpus)} bytes -> {args.out}")


if __name__ == "__main__":
    main()
