#!/usr/bin/env python3
"""Builds the chat-template reference suite: tests/data/chat/conversations.jsonl.

Each line is {"name": ..., "conversation": {...}} where the conversation is what `gemma4 render-chat --input`
takes: "messages" plus template variables (tools, add_generation_prompt, enable_thinking, bos_token, ...).
The conversations cover what the Gemma 4 templates branch on: system/developer turns, multi-turn, thinking
on/off, tools with nested parameters, tool calls and responses, reasoning_content, images, audio, video,
unicode, empty content and generation prompts. tools/chat_reference.py renders them with Hugging Face.

Usage: python3 tools/make_chat_suite.py [--out tests/data/chat/conversations.jsonl]
"""
import argparse
import json
import os

WEATHER_TOOL = {
    "type": "function",
    "function": {
        "name": "get_weather",
        "description": "Get the current weather for a city.",
        "parameters": {
            "type": "object",
            "properties": {
                "city": {"type": "string", "description": "City name, e.g. \"Paris\""},
                "unit": {"type": "string", "description": "Temperature unit", "enum": ["celsius", "fahrenheit"]},
                "days": {"type": "integer", "description": "Forecast days"},
            },
            "required": ["city"],
        },
    },
}

NESTED_TOOL = {
    "type": "function",
    "function": {
        "name": "book_trip",
        "description": "Book a trip with travellers and legs.\nSupports multiple legs.",
        "parameters": {
            "type": "object",
            "properties": {
                "travellers": {
                    "type": "array",
                    "description": "People travelling",
                    "items": {
                        "type": "object",
                        "properties": {
                            "name": {"type": "string", "description": "Full name"},
                            "age": {"type": "integer"},
                            "seat": {"type": "string", "enum": ["window", "aisle", "middle"]},
                        },
                        "required": ["name"],
                    },
                },
                "budget": {"type": "number", "description": "Maximum spend", "nullable": True},
                "options": {
                    "type": "object",
                    "description": "Extra options",
                    "properties": {
                        "refundable": {"type": "boolean", "description": "Refundable fares only"},
                        "class": {"type": "string", "enum": ["economy", "business"]},
                        "Meals": {"type": "array", "items": {"type": "string", "enum": ["veg", "kosher", "halal"]}},
                    },
                    "required": ["class"],
                },
                "tags": {"type": "array", "items": {"type": ["string", "null"], "description": None}},
                "legs": {"type": "ARRAY", "items": {"type": "object", "properties": {"from": {"type": "string"},
                                                                                    "to": {"type": "string"}},
                                                    "required": ["from", "to"]}},
                "notes": {"type": "string"},
            },
            "required": ["travellers", "legs"],
        },
        "response": {"description": "Booking confirmation", "type": "object"},
    },
}

ODD_TOOLS = [
    {"type": "function", "function": {"name": "no_params", "description": "Takes nothing."}},
    {"type": "function", "function": {"name": "empty_params", "description": "Empty schema.",
                                      "parameters": {"type": "object", "properties": {}}}},
    {"type": "function", "function": {"name": "type_only", "description": "", "parameters": {"type": "object"}}},
    {"type": "function", "function": {
        "name": "weird_props", "description": "Mixed-case keys, unicode and non-standard keys.",
        "parameters": {"type": "object", "properties": {
            "b": {"type": "string", "description": "lower b"},
            "A": {"type": "integer", "description": "upper A"},
            "a": {"type": "number", "minimum": 0, "maximum": 1.5},
            "_private": {"type": "boolean"},
            "Émoji": {"type": "string", "description": "ünïcödé 😀"},
            "z_obj_no_props": {"type": "object", "description": "object without properties"},
            "list_type": {"type": ["string", "null"], "description": "union type"},
            "num_enum": {"type": "string", "enum": [1, 2.5, True, None, "x"]},
        }, "required": ["b", "A"]},
        "response": {"description": "No type here"}}},
]

CALC_TOOL = {"type": "function", "function": {
    "name": "calc", "description": "Evaluate arithmetic.",
    "parameters": {"type": "object", "properties": {"expr": {"type": "string"}}, "required": ["expr"]}}}


def user(text):
    return {"role": "user", "content": text}


def assistant(text):
    return {"role": "assistant", "content": text}


def system(text):
    return {"role": "system", "content": text}


def call(name, args):
    return {"type": "function", "function": {"name": name, "arguments": args}}


def build():
    s = []

    def add(name, messages, **kw):
        conv = {"messages": messages}
        conv.update(kw)
        s.append({"name": name, "conversation": conv})

    # Basic turns and generation prompts.
    add("user_only_gen", [user("Hi")], add_generation_prompt=True)
    add("user_only_nogen", [user("Hi")], add_generation_prompt=False)
    add("user_only_default_gen", [user("Hello there")])
    add("user_assistant", [user("What is 2+2?"), assistant("4")])
    add("multi_turn_gen", [user("Hi"), assistant("Hello! How can I help?"), user("Tell me a joke."),
                           assistant("Why did the chicken cross the road?"), user("Why?")],
        add_generation_prompt=True)
    add("system_multi_turn", [system("You are a helpful assistant."), user("Hi"), assistant("Hello."),
                              user("Bye")], add_generation_prompt=True)
    add("developer_first", [{"role": "developer", "content": "  Follow the rules.  "}, user("ok")],
        add_generation_prompt=True)
    add("system_only", [system("Only a system prompt.")], add_generation_prompt=True)
    add("system_only_nogen", [system("Only a system prompt.")])
    add("assistant_first", [assistant("I speak first."), user("Fine.")], add_generation_prompt=True)
    add("system_not_first", [user("Hi"), system("Late system message")], add_generation_prompt=True)

    # Thinking.
    add("thinking_on_gen", [user("Solve x+1=3")], add_generation_prompt=True, enable_thinking=True)
    add("thinking_off_gen", [user("Solve x+1=3")], add_generation_prompt=True, enable_thinking=False)
    add("thinking_on_system", [system("Be brief."), user("Why is the sky blue?")], add_generation_prompt=True,
        enable_thinking=True)
    add("thinking_on_nogen", [user("Q"), assistant("A")], enable_thinking=True)
    add("thinking_in_history", [user("Q1"), assistant("<|channel>thought\nLet me think.<channel|>Answer one."),
                                user("Q2")], add_generation_prompt=True, enable_thinking=True)
    add("thinking_two_channels", [user("Q"), assistant("pre <|channel>t1<channel|> mid <|channel>t2<channel|> end ")])
    add("thinking_unclosed", [user("Q"), assistant("answer <|channel>never closed")])
    add("thinking_truthy_int", [user("Q")], add_generation_prompt=True, enable_thinking=1)

    # Tools.
    add("tools_simple", [user("Weather in Paris?")], tools=[WEATHER_TOOL], add_generation_prompt=True)
    add("tools_nested", [system("You book trips."), user("Book it")], tools=[NESTED_TOOL, WEATHER_TOOL],
        add_generation_prompt=True)
    add("tools_odd", [user("test")], tools=ODD_TOOLS, add_generation_prompt=True)
    add("tools_thinking", [user("Weather?")], tools=[WEATHER_TOOL], enable_thinking=True,
        add_generation_prompt=True)
    # An object property without "properties": the stock template iterates the property's own keys, and
    # jinja2 raises on additionalProperties=True (looking up 'type' on a bool).
    add("tools_object_additional_properties", [user("x")], tools=[{"type": "function", "function": {
        "name": "f", "description": "d", "parameters": {"type": "object", "properties": {
            "o": {"type": "object", "additionalProperties": True}}}}}], add_generation_prompt=True)
    add("tools_empty_list", [user("No tools")], tools=[], add_generation_prompt=True)

    # Tool calls and responses.
    args_mixed = {"city": "Paris", "days": 3, "ratio": 0.5, "tiny": 1e-7, "huge": 1e22, "whole": 2.0,
                  "neg": -0.0, "flag": True, "off": False, "nothing": None,
                  "nested": {"b": [1, "two", {"Z": 3, "a": None}], "A": {}}, "list": [], "quote": "say \"hi\"\n"}
    add("tool_call_mapping", [user("Weather in Paris?"),
                              {"role": "assistant", "tool_calls": [call("get_weather", args_mixed)]}],
        tools=[WEATHER_TOOL])
    add("tool_call_string_args", [user("Weather?"),
                                  {"role": "assistant", "content": None,
                                   "tool_calls": [call("get_weather", "{\"city\": \"Rome\"}")]}],
        tools=[WEATHER_TOOL])
    add("tool_call_then_tool_role", [user("Weather in Paris?"),
                                     {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"})]},
                                     {"role": "tool", "name": "get_weather", "content": "{\"temp\": 21}"},
                                     assistant("It is 21 degrees.")], tools=[WEATHER_TOOL])
    add("tool_responses_same_turn", [
        user("Weather in Paris?"),
        {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"})],
         "tool_responses": [{"name": "get_weather", "response": {"temp": 21, "unit": "celsius",
                                                                  "Sky": "clear", "alerts": []}}]},
        assistant("It is 21 degrees and clear.")], tools=[WEATHER_TOOL])
    add("tool_responses_gen", [
        user("Weather in Paris?"),
        {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"})],
         "tool_responses": [{"name": "get_weather", "response": {"temp": 21}}]}],
        tools=[WEATHER_TOOL], add_generation_prompt=True)
    add("tool_responses_gen_thinking", [
        user("Weather in Paris?"),
        {"role": "assistant", "tool_calls": [call("get_weather", {"city": "Paris"})],
         "tool_responses": [{"name": "get_weather", "response": {"temp": 21}}]}],
        tools=[WEATHER_TOOL], add_generation_prompt=True, enable_thinking=True)
    add("tool_responses_nonmapping", [
        user("Compute"),
        {"role": "assistant", "tool_calls": [call("calc", {"expr": "1+1"}), call("calc", {"expr": "2*3"})],
         "tool_responses": [{"name": "calc", "response": 2}, {"name": "calc", "response": "six"},
                            {"response": [1, 2.5, True, None]}, {"name": "calc", "response": None}]},
        assistant("2 and 6.")], tools=[CALC_TOOL])
    add("tool_role_message_with_responses", [
        user("Compute 1+1"),
        {"role": "assistant", "tool_calls": [call("calc", {"expr": "1+1"})]},
        {"role": "tool", "tool_responses": [{"name": "calc", "response": {"value": 2}}]},
        assistant("It is 2.")], tools=[CALC_TOOL], add_generation_prompt=False)
    add("tool_chain_interleaved", [
        user("Plan my day"),
        {"role": "assistant", "reasoning_content": "Need weather first.",
         "tool_calls": [call("get_weather", {"city": "Oslo"})],
         "tool_responses": [{"name": "get_weather", "response": {"temp": -3}}]},
        {"role": "assistant", "reasoning_content": "Cold. Check tomorrow too.",
         "tool_calls": [call("get_weather", {"city": "Oslo", "days": 2})],
         "tool_responses": [{"name": "get_weather", "response": {"temp": -5}}]},
        assistant("Wear a coat.")], tools=[WEATHER_TOOL], enable_thinking=True)
    add("reasoning_before_last_user", [
        user("First"),
        {"role": "assistant", "reasoning_content": "old reasoning", "tool_calls": [call("calc", {"expr": "1"})],
         "tool_responses": [{"name": "calc", "response": 1}]},
        assistant("One."),
        user("Second"),
        {"role": "assistant", "reasoning_content": "new reasoning", "tool_calls": [call("calc", {"expr": "2"})]}],
        tools=[CALC_TOOL])
    add("reasoning_without_tool_calls", [user("Hi"), {"role": "assistant", "reasoning_content": "ignored?",
                                                      "content": "Hello"}])
    add("tool_call_and_content", [user("Weather?"),
                                  {"role": "assistant", "content": "Let me check.",
                                   "tool_calls": [call("get_weather", {"city": "Lima"})]}],
        tools=[WEATHER_TOOL], add_generation_prompt=True)

    # Multimodal content.
    add("image_text", [{"role": "user", "content": [{"type": "image", "url": "cat.png"},
                                                    {"type": "text", "text": "What is this?"}]}],
        add_generation_prompt=True)
    add("audio_text", [{"role": "user", "content": [{"type": "text", "text": "Transcribe:"},
                                                    {"type": "audio", "path": "a.wav"}]}],
        add_generation_prompt=True)
    add("video_text", [{"role": "user", "content": [{"type": "video", "path": "v.mp4"},
                                                    {"type": "text", "text": " Describe it. "}]}],
        add_generation_prompt=True)
    add("mixed_media_multi_turn", [
        {"role": "user", "content": [{"type": "image"}, {"type": "image"}, {"type": "text", "text": "Compare."},
                                     {"type": "audio"}, {"type": "video"}, {"type": "unknown_kind"}]},
        {"role": "assistant", "content": [{"type": "text", "text": "<|channel>hmm<channel|>They differ."}]},
        {"role": "user", "content": [{"type": "text", "text": "Thanks"}]}], add_generation_prompt=True)
    add("system_content_list", [{"role": "system", "content": [{"type": "text", "text": "Be nice"}]},
                                user("Hi")], add_generation_prompt=True)
    add("empty_content_list", [{"role": "user", "content": []}], add_generation_prompt=True)

    # Unicode and whitespace.
    add("unicode_mix", [user("Héllo wörld — ¿qué tal? 你好，世界 ・ こんにちは ・ 안녕하세요 ・ مرحبا ・ שלום ・ Привет"),
                        assistant("Emoji: 😀👍🏽👨‍👩‍👧 and math ∑∫√ and combining é")],
        add_generation_prompt=True)
    add("unicode_whitespace_trim", [user("\u00a0\u3000 padded with nbsp and ideographic space \u2003\n\t"),
                                    assistant("\u200bzero width kept\u200b")])
    add("whitespace_content", [user("\n\n  line one\n\n  line two  \n\n"), assistant("  spaced answer  \n")],
        add_generation_prompt=True)
    add("special_chars", [user("Quotes ' \" backslash \\ braces {{ }} {% %} {# #} and <|turn> tokens"),
                          assistant("Sure: {'a': 1}")])
    add("control_chars", [user("bell\u0007 escape\u001b tab\tend\r\nwindows")], add_generation_prompt=True)

    # Empty and missing content.
    add("empty_string_content", [user(""), assistant("")], add_generation_prompt=True)
    add("null_content", [user("Hi"), {"role": "assistant", "content": None}])
    add("missing_content", [user("Hi"), {"role": "assistant"}], add_generation_prompt=True)
    add("empty_messages", [], add_generation_prompt=True)

    # Variables.
    add("custom_bos", [user("Hi")], bos_token="[BOS]", eos_token="[EOS]", add_generation_prompt=True)
    add("extra_variables", [user("Hi")], add_generation_prompt=True, custom_var={"x": 1}, date_string="1 Jan 2026")
    add("numbers_as_content", [{"role": "user", "content": 42}, {"role": "assistant", "content": 3.5}])
    add("dict_content", [{"role": "user", "content": {"text": "a dict"}}], add_generation_prompt=True)
    add("unknown_role", [{"role": "narrator", "content": "Once upon a time"}, user("go on")],
        add_generation_prompt=True)
    add("role_model_literal", [user("Hi"), {"role": "model", "content": "Hi (as model role)"}])

    # A longer conversation mixing everything.
    long_msgs = [system("Long session.")]
    for i in range(6):
        long_msgs.append(user(f"Question {i}: what is {i} squared?"))
        if i % 2:
            long_msgs.append({"role": "assistant", "tool_calls": [call("calc", {"expr": f"{i}*{i}"})],
                              "tool_responses": [{"name": "calc", "response": {"value": i * i}}]})
        long_msgs.append(assistant(f"<|channel>compute<channel|>{i * i}"))
    add("long_mixed", long_msgs, tools=[CALC_TOOL], add_generation_prompt=True)
    add("long_mixed_thinking", long_msgs, tools=[CALC_TOOL], add_generation_prompt=True, enable_thinking=True)
    return s


def main():
    ap = argparse.ArgumentParser()
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--out", default=os.path.join(here, "..", "tests", "data", "chat", "conversations.jsonl"))
    args = ap.parse_args()
    suite = build()
    names = [c["name"] for c in suite]
    assert len(names) == len(set(names)), "duplicate names"
    os.makedirs(os.path.dirname(args.out), exist_ok=True)
    with open(args.out, "w", encoding="utf-8") as f:
        for c in suite:
            f.write(json.dumps(c, ensure_ascii=False) + "\n")
    print(f"wrote {len(suite)} conversations to {args.out}")


if __name__ == "__main__":
    main()
