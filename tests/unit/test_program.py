import ast

from spark_eval.data.ds1000 import build_program


def test_program_is_context_answer_literal_and_tests(problems):
    with_string_test = 0
    for p in problems:
        answer = p.reference_code
        program = build_program(p.code_context, answer)
        assert program.startswith(p.code_context + "\ncode = ")
        code_line = program[len(p.code_context) + 1 :].split("\ntest_execution(code)\n")[0]
        assert ast.literal_eval(code_line.removeprefix("code = ")) == answer
        tail = program.rsplit("test_execution(code)\n", 1)[1]
        if "test_string(" in p.code_context:
            with_string_test += 1
            assert tail == "test_string(code)\n"
        else:
            assert tail == "\n"
    assert with_string_test == 159


def test_program_compiles_for_tricky_answers(problems):
    for answer in ["'''", '"""\\', "\x00\n\t", "    return result\n", "ü = '→'"]:
        compile(build_program(problems[0].code_context, answer), "<p>", "exec")
