#!/usr/bin/env python3
"""Builds the chat-template reference suite: tests/data/chat/conversations.jsonl, and the engine cases
tests/data/chat/jinja_cases.jsonl (small templates exercising each Jinja feature the engine supports).

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


# Engine cases: (name, template, vars). Rendered by tools/chat_reference.py exactly like the suite.
ENGINE_CASES = [
    # Whitespace control with trim_blocks / lstrip_blocks.
    ("ws_trim_lstrip", "  {% if true %}\n    A\n  {% endif %}\nB", {}),
    ("ws_minus", "a  {%- if true -%}  b  {%- endif -%}  c", {}),
    ("ws_plus", "x\n  {%+ if true %}y{% endif +%}\nz", {}),
    ("ws_var_no_lstrip", "  {{ 'v' }}\n  {% if true %}w{% endif %}", {}),
    ("ws_comment", "a\n  {# note #}\nb {#- strip -#}   c", {}),
    ("ws_trailing_newline_dropped", "line\n", {}),
    ("ws_crlf", "a\r\n{% if true %}\r\nb\r\n{% endif %}\r\n", {}),
    ("ws_var_minus", "a \n {{- 'b' -}} \n c", {}),
    ("ws_inline_block_keeps_space", "x {% if true %}y{% endif %} z", {}),
    ("raw_block", "{% raw %}{{ not rendered }}{% endraw %}", {}),
    # Literals and printing (Python str/repr).
    ("str_escapes", "{{ 'tab\\there\\nnl \\x41\\u00e9\\U0001F600 back\\\\slash \\d' }}", {}),
    ("str_adjacent", "{{ 'a' \"b\" 'c' }}", {}),
    ("print_scalars", "{{ true }} {{ none }} {{ 1.0 }} {{ 10 }} {{ -0.0 }} {{ 1e16 }} {{ 1e-5 }} {{ 0.1 + 0.2 }}", {}),
    ("print_floats", "{{ 1/3 }} {{ 2/3*3 }} {{ 1e100 }} {{ 123456789012345678.0 }} {{ 0.0001 }} {{ 1.5e300 * 1e10 }}", {}),
    ("print_containers", "{{ [1, 'a', none, true, 2.5] }} {{ {'k': [1, {'n': none}]} }} {{ (1,) }} {{ ('a', 'b') }} {{ [] }} {{ {} }}", {}),
    ("print_repr_quotes", "{{ [\"it's\", 'say \"hi\"', 'both \\' \"', 'nl\\n', 'bell\\x07', 'nbsp\\u00a0', 'é😀', '\\u200b'] }}", {}),
    ("print_vars", "{{ obj }}|{{ lst }}|{{ f }}|{{ big }}", {"obj": {"b": 1, "a": [True, None, 1.5]}, "lst": ["x", "y's"], "f": 2.0, "big": 2**62}),
    # Operators.
    ("arith", "{{ 7 // 2 }} {{ -7 // 2 }} {{ 7 % 3 }} {{ -7 % 3 }} {{ 7 / 2 }} {{ 2 ** 10 }} {{ 1 + true }} {{ 10 / 4 }} {{ 1.5 // 1 }} {{ -1.5 % 1 }} {{ 2 ** -1 }}", {}),
    ("arith_precedence", "{{ 1 + 2 * 3 }} {{ (1 + 2) * 3 }} {{ 2 * 3 ** 2 }} {{ -2 ** 2 }} {{ 10 - 2 - 3 }} {{ 1 ~ 2 * 3 }} {{ 2 * 3 ~ 4 }}", {}),
    ("concat_repeat", "{{ 'ab' ~ 1 ~ none ~ missing }} {{ 'a' * 3 }} {{ [1] * 2 }} {{ [1, 2] + [3] }} {{ 'x' + 'y' }}", {}),
    ("compare", "{{ 1 < 2 < 3 }} {{ 3 > 2 > 2 }} {{ 'a' < 'b' }} {{ [1, 2] < [1, 3] }} {{ 1 == 1.0 }} {{ true == 1 }} {{ none == none }} {{ 'a' != 'a' }} {{ missing == none }}", {}),
    ("logic_values", "{{ 0 or 'x' }} {{ 'a' and 'b' }} {{ none or [] }} {{ not none }} {{ not 'x' }} {{ 1 and 0 }}", {}),
    ("inline_if", "{{ 'y' if x else 'n' }}|{{ 'y' if false }}|{{ 1 if true else 2 if false else 3 }}|{{ 'a' if none else 'b' if 0 else 'c' }}", {"x": [0]}),
    ("membership", "{{ 'a' in 'cat' }} {{ 1 in [1, 2] }} {{ 'k' in {'k': 1} }} {{ 'z' not in [] }} {{ 2 in {'a': 2} }} {{ 'x' in missing }}", {}),
    ("filter_precedence", "{{ -2 | abs }} {{ not true | string }} {{ 'abc'[1:] | upper }} {{ 'a' ~ 'b' | upper }} {{ 1 + [1, 2] | length }}", {}),
    # Subscripts and slices.
    ("slices", "{{ l[1:4] }} {{ l[::-1] }} {{ l[-2:] }} {{ l[::2] }} {{ l[5:] }} {{ l[-10:2] }} {{ l[:-1] }} {{ l[3:1:-1] }}", {"l": [1, 2, 3, 4, 5]}),
    ("str_slices", "{{ 'hello'[1:-1] }} {{ 'héllo'[::-1] }} {{ 'héllo'[1] }} {{ 'abc'[-1] }} {{ 'héllo' | length }}", {}),
    ("index_attr", "{{ l[-1] }} {{ l.0 }} {{ d['a'] }} {{ d.a }} {{ l[10] }}|{{ d['zz'] }}|{{ d.zz }}", {"l": [1, 2], "d": {"a": "A"}}),
    ("dict_method_vs_key", "{{ d.items is defined }} {{ d['items'] }} {{ d.get('items') }} {{ d.keys() | list }} {{ d.values() | list }} {{ d.get('zz', 5) }} {{ d.get('zz') }}", {"d": {"items": "key wins for []", "b": 2}}),
    # Undefined.
    ("undefined_print", "[{{ missing }}][{{ missing is defined }}][{{ d.missing }}][{{ missing | default('x') }}][{{ none | default('x') }}][{{ '' | default('x', true) }}][{{ missing | d('y') }}]", {"d": {}}),
    ("undefined_tests", "{{ missing is sequence }} {{ missing is iterable }} {{ missing is string }} {{ missing is mapping }} {{ missing | length }} {{ missing | list }} {{ missing | trim }}|", {}),
    ("undefined_attr_error", "{{ missing.attr }}", {}),
    ("undefined_add_error", "{{ missing + 1 }}", {}),
    ("none_attr_is_undefined", "[{{ n.attr }}][{{ n['k'] is defined }}]", {"n": None}),
    # Filters.
    ("filters_str", "{{ '  Hi There  ' | trim }}|{{ 'xxhixx' | trim('x') }}|{{ 'abc' | upper }}|{{ 'ABC' | lower }}|{{ 'hELLO world' | capitalize }}|{{ 'hello wORLD' | title }}|{{ 'aaa' | replace('a', 'b') }}|{{ 'aaa' | replace('a', 'b', 2) }}|{{ 'Straße' | upper }}|{{ 'ÀÉÎ' | lower }}", {}),
    ("filters_len_join", "{{ 'héllo' | length }} {{ [1, 2, 3] | count }} {{ {'a': 1} | length }} {{ [1, 2, 3] | join }} {{ [1, 'a', none] | join(', ') }} {{ users | join('/', attribute='name') }}", {"users": [{"name": "ann"}, {"name": "bob"}]}),
    ("filters_first_last", "{{ [1, 2, 3] | first }} {{ [1, 2, 3] | last }} {{ 'abc' | first }} {{ 'abc' | last }} [{{ [] | first }}] {{ {'k': 1, 'j': 2} | first }}", {}),
    ("filters_list", "{{ 'abc' | list }} {{ {'a': 1, 'b': 2} | list }} {{ (1, 2) | list }}", {}),
    ("filters_dictsort", "{{ d | dictsort }} {{ d | dictsort(true) }} {{ d | dictsort(by='value') }} {{ d | dictsort(reverse=true) }}", {"d": {"b": 1, "A": 4, "a": 3, "B": 2, "_x": 0, "é": 5, "Z1": 6}}),
    ("filters_map", "{{ ['a', 'b'] | map('upper') | list }} {{ users | map(attribute='name') | list }} {{ users | map(attribute='age', default=0) | list }} {{ [['a', 'b'], ['c']] | map('join', '-') | list }} {{ users | map(attribute='tags.0') | list }}", {"users": [{"name": "ann", "age": 3, "tags": ["x"]}, {"name": "bob", "tags": ["y", "z"]}]}),
    ("filters_select", "{{ users | selectattr('admin') | map(attribute='name') | list }} {{ users | rejectattr('admin') | map(attribute='name') | list }} {{ users | selectattr('age', 'equalto', 3) | list | length }} {{ [1, 2, 3, 4] | select('odd') | list }} {{ [1, none, 2] | reject('none') | list }} {{ [0, 1, '', 'a'] | select | list }} {{ [1, 5, 10] | select('gt', 3) | list }}", {"users": [{"name": "ann", "admin": True, "age": 3}, {"name": "bob", "admin": False}]}),
    ("filters_items", "{% for k, v in d | items %}{{ k }}={{ v }};{% endfor %}{{ missing | items | list }}", {"d": {"z": 1, "a": [2]}}),
    ("filters_numbers", "{{ '42' | int }} {{ '3.7' | int }} {{ 'x' | int(5) }} {{ 3.9 | int }} {{ ' 7 ' | int }} {{ '0x1A' | int(0, 16) }} {{ '2.5' | float }} {{ 'nan?' | float(1.5) }} {{ -3 | abs }} {{ 2.5 | round }} {{ 3.5 | round }} {{ 3.14159 | round(2) }} {{ 2.7 | round(0, 'floor') }} {{ 2.1 | round(0, 'ceil') }} {{ 7 | round }} {{ true | int }}", {}),
    ("filters_agg", "{{ [3, 1, 2] | sum }} {{ [1.5, 2] | sum }} {{ users | sum(attribute='n') }} {{ [3, 1, 2] | min }} {{ ['b', 'A', 'c'] | max }} {{ ['b', 'A', 'c'] | min }} {{ [3, 1, 2] | sort }} {{ ['b', 'A', 'a', 'B'] | sort }} {{ ['b', 'A', 'a'] | sort(case_sensitive=true) }} {{ users | sort(attribute='n', reverse=true) | map(attribute='n') | list }} {{ [1, 2, 1, 'A', 'a'] | unique | list }} {{ 'abc' | reverse }} {{ [1, 2, 3] | reverse | list }}", {"users": [{"n": 2}, {"n": 5}, {"n": 1}]}),
    ("filters_string_attr", "{{ 5 | string }} {{ none | string }} {{ [1] | string }} {{ 'a b  c\\nd' | wordcount }} {{ d | attr('get') is defined }}", {"d": {}}),
    ("tojson_default", "{{ v | tojson }}", {"v": {"s": "é \"q\" \\ \n\t\u0001 </tag> & 😀", "i": 1, "f": 1.5, "g": 1e-7, "b": True, "n": None, "l": [1, [2, {}]], "e": []}}),
    ("tojson_options", "{{ v | tojson(indent=2) }}|{{ v | tojson(sort_keys=true) }}|{{ v | tojson(separators=(',', ':')) }}|{{ v | tojson(ensure_ascii=true) }}|{{ v | tojson(indent='\\t', sort_keys=true) }}|{{ [] | tojson(indent=2) }}|{{ v | tojson(indent=0) }}", {"v": {"z": [1, 2], "a": {"é": "😀"}, "m": "\u007f"}}),
    ("tojson_tuple_and_keys", "{{ (1, 'a') | tojson }} {{ {1: 'x', none: 2, true: 3} | tojson }}", {}),
    ("tojson_undefined_error", "{{ missing | tojson }}", {}),
    # Tests.
    ("tests_types", "{{ 'a' is string }} {{ {} is mapping }} {{ [] is sequence }} {{ {} is sequence }} {{ 'a' is sequence }} {{ 1 is sequence }} {{ 1 is number }} {{ true is number }} {{ 1 is integer }} {{ true is integer }} {{ 1.0 is float }} {{ true is boolean }} {{ none is none }} {{ 1 is iterable }} {{ 'a' is iterable }}", {}),
    ("tests_values", "{{ 3 is odd }} {{ 4 is even }} {{ 9 is divisibleby 3 }} {{ 9 is divisibleby(4) }} {{ 3 is eq 3 }} {{ 3 is equalto(3) }} {{ 2 is in [1, 2] }} {{ 'ab' is lower }} {{ 'AB' is upper }} {{ x is not none }} {{ x is not defined }} {{ 5 is gt 3 }} {{ 'x' is ne 'y' }} {{ none is sameas none }}", {"x": 0}),
    ("tests_callable", "{{ range is callable }} {{ 'a'.upper is callable }} {{ 1 is callable }}", {}),
    # String methods.
    ("str_methods_split", "{{ 'a,b,,c'.split(',') }} {{ 'a,b,c'.split(',', 1) }} {{ 'a,b,c'.rsplit(',', 1) }} {{ '  a  b \\n c '.split() }} {{ 'a b c'.split(none, 1) }} {{ ''.split(',') }} {{ ''.split() }}", {}),
    ("str_methods_misc", "{{ 'abc'.startswith('ab') }} {{ 'abc'.endswith(('x', 'c')) }} {{ 'xxhixx'.strip('x') }} {{ '  hi  '.lstrip() }}| {{ '  hi  '.rstrip() }}|{{ 'a-b'.replace('-', '+') }} {{ 'héllo'.find('l') }} {{ 'hello'.find('z') }} {{ 'banana'.count('an') }} {{ '-'.join(['a', 'b']) }} {{ 'prefix_x'.removeprefix('prefix_') }} {{ 'hello world'.title() }} {{ '123'.isdigit() }} {{ 'a\\nb\\r\\nc'.splitlines() }} {{ 'Abc'.upper() }} {{ 'Abc'.lower() }} {{ 'abc'.capitalize() }} {{ 'abc'.index('c') }}", {}),
    ("str_method_unknown_error", "{{ 'abc'.nosuchmethod() }}", {}),
    ("list_methods", "{{ [1, 2, 2].count(2) }} {{ ['a', 'b'].index('b') }}", {}),
    ("list_append_error", "{{ l.append(1) }}", {"l": []}),
    # Namespace, set and scoping.
    ("namespace", "{% set ns = namespace(count=0, items='') %}{% for i in range(3) %}{% set ns.count = ns.count + i %}{% set ns.items = ns.items ~ i %}{% endfor %}{{ ns.count }} {{ ns.items }} {{ ns.missing }}|{{ ns }}", {}),
    ("namespace_from_dict", "{% set ns = namespace({'a': 1}, b=2) %}{{ ns.a }}{{ ns.b }}", {}),
    ("set_scoping", "{% set x = 1 %}{% for i in [1, 2] %}{{ x }}{% set x = x + 10 %}{{ x }},{% endfor %}{{ x }}|{% if true %}{% set y = 5 %}{% endif %}{{ y }}", {}),
    ("set_tuple_and_block", "{% set a, b = 1, 2 %}{{ a }}{{ b }}|{% set blk %}  inner {{ a }}  {% endset %}[{{ blk }}]|{% set up | upper | trim %}  shout {% endset %}[{{ up }}]", {}),
    ("set_attr_non_namespace_error", "{% set d = {} %}{% set d.x = 1 %}", {}),
    # Loops.
    ("loop_vars", "{% for x in 'abc' %}{{ loop.index }}{{ loop.index0 }}{{ loop.revindex }}{{ loop.revindex0 }}{{ loop.first }}{{ loop.last }}{{ loop.length }}[{{ loop.previtem }}|{{ loop.nextitem }}]{{ loop.cycle('o', 'e') }};{% endfor %}", {}),
    ("loop_else_filter", "{% for x in [] %}no{% else %}empty{% endfor %}|{% for x in [1, 2, 3, 4] if x is even %}{{ x }}{{ loop.length }}{{ loop.last }},{% else %}none{% endfor %}|{% for x in [1] if x > 5 %}{% else %}filtered-out{% endfor %}", {}),
    ("loop_break_continue", "{% for i in range(10) %}{% if i == 2 %}{% continue %}{% endif %}{% if i == 5 %}{% break %}{% endif %}{{ i }}{% endfor %}", {}),
    ("loop_unpack_dict", "{% for k, v in d.items() %}{{ k }}:{{ v }},{% endfor %}{% for k in d %}{{ k }}{% endfor %}{% for a, b in [[1, 2], 'xy'] %}{{ a }}{{ b }}{% endfor %}", {"d": {"z": 1, "a": 2}}),
    ("loop_nested_outer", "{% for a in [1, 2] %}{% for b in 'xy' %}{{ a }}{{ b }}{{ loop.index }}{% endfor %}{{ loop.index }};{% endfor %}", {}),
    ("loop_over_none_error", "{% for x in none %}{% endfor %}", {}),
    ("loop_over_undefined", "[{% for x in missing %}{{ x }}{% endfor %}]", {}),
    ("loop_unpack_error", "{% for a, b in [[1, 2, 3]] %}{% endfor %}", {}),
    ("generator_semantics", "{% if [] | select('odd') %}truthy{% endif %}|{% set g = [1, 2] | map('string') %}{% for x in g %}{{ x }}{% endfor %}{% for x in g %}again{% endfor %}", {}),
    # Macros.
    ("macro_defaults", "{% macro greet(name, greeting='Hello', punct='!') %}{{ greeting }}, {{ name }}{{ punct }}{% endmacro %}{{ greet('Ann') }} {{ greet('Bob', punct='?') }} {{ greet(greeting='Hi', name='Cy') }} [{{ greet() }}]", {}),
    ("macro_recursion", "{% macro show(v) %}{% if v is mapping %}{{ '{' }}{% for k, x in v | dictsort %}{{ k }}={{ show(x) }}{% if not loop.last %},{% endif %}{% endfor %}{{ '}' }}{% elif v is sequence and v is not string %}[{% for x in v %}{{ show(x) }}{{ ',' if not loop.last }}{% endfor %}]{% else %}{{ v }}{% endif %}{% endmacro %}{{ show(data) }}", {"data": {"b": [1, {"c": None}], "a": "s"}}),
    ("macro_forward_reference", "{% macro a() %}A{{ b() }}{% endmacro %}{% macro b() %}B{% endmacro %}{{ a() }}{{ a() | lower }}", {}),
    ("macro_sees_globals_and_trim", "{% macro m() %}  {{ top }}  {% endmacro %}[{{ m() }}][{{ m() | trim }}]", {"top": "T"}),
    ("macro_too_many_args_error", "{% macro m(a) %}{% endmacro %}{{ m(1, 2) }}", {}),
    ("macro_unknown_kwarg_error", "{% macro m(a) %}{% endmacro %}{{ m(b=1) }}", {}),
    # Globals.
    ("range_object", "{{ range(3) }} {{ range(1, 10, 3) }} {{ range(3) | length }} {{ range(3)[-1] }} {{ 2 in range(3) }} {{ range(2) == range(0, 2) }} {% for i in range(2) %}{{ i }}{% endfor %}", {}),
    ("globals", "{{ range(3) | list }} {{ range(1, 10, 3) | list }} {{ range(5, 0, -2) | list }} {{ dict(a=1, b='x') }} {{ dict({'k': 1}) }}", {}),
    ("raise_exception_error", "{{ raise_exception('boom') }}", {}),
    ("generation_tag", "a{% generation %}b{{ 'c' }}{% endgeneration %}d", {}),
    ("literals", "{{ [1, 2,] }} {{ {'a': 1, 'b': {'c': [none]}} }} {{ () }} {{ (1, 2) }} {{ 1_000 }} {{ 1.5e3 }} {{ 0 }}", {}),
    ("string_compare_unicode", "{{ 'é' > 'z' }} {{ ['é', 'z', 'E', 'e'] | sort }}", {}),
]


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
    ap.add_argument("--cases-out", default=os.path.join(here, "..", "tests", "data", "chat", "jinja_cases.jsonl"))
    args = ap.parse_args()
    with open(args.cases_out, "w", encoding="utf-8") as f:
        for name, template, variables in ENGINE_CASES:
            f.write(json.dumps({"name": name, "template": template, "vars": variables}, ensure_ascii=False) + "\n")
    print(f"wrote {len(ENGINE_CASES)} engine cases to {args.cases_out}")
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
