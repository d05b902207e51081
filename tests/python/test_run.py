"""python -m hbmalloc.run passes arguments, exit codes and exceptions through."""
import textwrap


def write(tmp_path, name, body):
    path = tmp_path / name
    path.write_text(textwrap.dedent(body))
    return path


def test_without_a_gpu_the_launcher_stops_with_the_reason(run, tmp_path):
    script = write(tmp_path, "train.py", "print('ran')\n")
    done = run("-m", "hbmalloc.run", str(script))
    assert done.returncode == 1
    assert "no CUDA device is available" in done.stderr
    assert "ran" not in done.stdout


def test_arguments_and_exit_code_pass_through(run, tmp_path):
    script = write(tmp_path, "train.py", """
        import sys
        print("argv", sys.argv)
        print("name", __name__)
        sys.exit(3)
    """)
    done = run("-m", "hbmalloc.run", "--optional", str(script), "--lr", "0.1", "x y")
    assert done.returncode == 3, done.stderr
    assert f"argv [{str(script)!r}, '--lr', '0.1', 'x y']" in done.stdout
    assert "name __main__" in done.stdout
    assert "without hbmalloc" in done.stderr


def test_an_exception_passes_through_with_its_traceback(run, tmp_path):
    script = write(tmp_path, "boom.py", """
        def step():
            raise ValueError("boom at step 7")
        step()
    """)
    done = run("-m", "hbmalloc.run", "--optional", str(script))
    assert done.returncode == 1
    assert "ValueError: boom at step 7" in done.stderr
    assert "in step" in done.stderr


def test_a_module_runs_with_its_arguments(run, tmp_path):
    write(tmp_path, "mytrainer.py", """
        import sys
        if __name__ == "__main__":
            print("module argv", sys.argv[1:])
    """)
    done = run("-m", "hbmalloc.run", "--optional", "-m", "mytrainer", "--epochs", "2", cwd=tmp_path,
               env={"PYTHONPATH": str(tmp_path)})
    assert done.returncode == 0, done.stderr
    assert "module argv ['--epochs', '2']" in done.stdout


def test_script_sees_its_own_folder_on_sys_path(run, tmp_path):
    write(tmp_path, "helper.py", "VALUE = 42\n")
    script = write(tmp_path, "main.py", "import helper\nprint('helper', helper.VALUE)\n")
    done = run("-m", "hbmalloc.run", "--optional", str(script))
    assert done.returncode == 0, done.stderr
    assert "helper 42" in done.stdout


def test_bad_launcher_usage_is_named(run):
    done = run("-m", "hbmalloc.run", "--bogus", "x.py")
    assert done.returncode != 0
    assert "unknown option --bogus" in done.stderr
    done = run("-m", "hbmalloc.run")
    assert "no script or module" in done.stderr
