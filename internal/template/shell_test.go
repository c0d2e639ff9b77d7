package template

import (
	"errors"
	"os"
	"os/exec"
	"strings"
	"testing"

	"github.com/routines-dev/routines/internal/routine"
)

func TestParseShellLine(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{"echo hello", "echo hello"},
		{`echo "got {{ event.host }}"`, `echo "got ${ROUTINES_T1}"`},
		{"echo {{ event.host }}", `echo "${ROUTINES_T1}"`},
		{"echo got-{{ event.host }}-x", `echo got-"${ROUTINES_T1}"-x`},
		{"echo 'a {{ event.host }} b'", `echo 'a '"${ROUTINES_T1}"' b'`},
		{"echo $'a\\n{{ event.host }}'", `echo $'a\n'"${ROUTINES_T1}"$''`},
		{"echo $(printf %s {{ event.host }})", `echo $(printf %s "${ROUTINES_T1}")`},
		{"echo \"$(printf '<%s>' {{ event.host }})\"", `echo "$(printf '<%s>' "${ROUTINES_T1}")"`},
		{"echo \"x `printf %s {{ event.host }}` y\"", "echo \"x `printf %s \"${ROUTINES_T1}\"` y\""},
		{"cat <<EOF\nhost {{ event.host }}\nEOF", "cat <<EOF\nhost ${ROUTINES_T1}\nEOF"},
		{"echo {{TOKEN}} {{ input.subject }}", `echo "${ROUTINES_T1}" "${ROUTINES_T2}"`},
		{"X={{ input.subject }} ./run.sh", `X="${ROUTINES_T1}" ./run.sh`},
		{"# {{ input.subject }}\necho 'it''s'", "# ${ROUTINES_T1}\necho 'it''s'"},
		{`bash -c 'echo "$1"' _ "{{ input.subject }}"`, `bash -c 'echo "$1"' _ "${ROUTINES_T1}"`},
		{`case "{{ input.subject }}" in a) echo {{ input.count }};; esac`, `case "${ROUTINES_T1}" in a) echo "${ROUTINES_T2}";; esac`},
		{"echo {{ input.subject }} | python3 ./script.py", `echo "${ROUTINES_T1}" | python3 ./script.py`},
		{"echo {{ input.subject }} | python3 -c 'import sys; print(sys.stdin.read())' || bash x.sh", `echo "${ROUTINES_T1}" | python3 -c 'import sys; print(sys.stdin.read())' || bash x.sh`},
		{"sed -e 's/a/b/' {{ input.subject }}", `sed -e 's/a/b/' "${ROUTINES_T1}"`},
		{"[[ {{ input.subject }} == a* ]] && echo y", `[[ "${ROUTINES_T1}" == a* ]] && echo y`},
		{"[ {{ input.count }} -eq 3 ]", `[ "${ROUTINES_T1}" -eq 3 ]`},
	}
	for _, tt := range tests {
		l, err := ParseShell(tt.in, "")
		if err != nil {
			t.Errorf("ParseShell(%q): %v", tt.in, err)
			continue
		}
		if l.Line() != tt.want {
			t.Errorf("ParseShell(%q)\n got %s\nwant %s", tt.in, l.Line(), tt.want)
		}
	}
}

func TestParseShellRefuses(t *testing.T) {
	t.Parallel()
	tests := []struct{ in, want string }{
		{`eval "echo {{ input.subject }}"`, "eval runs its arguments as code"},
		{`bash -c "echo {{ input.subject }}"`, "the -c argument of bash is shell code"},
		{`sudo -u x bash -ec "echo {{ input.subject }}"`, "the -c argument of bash is shell code"},
		{`sh -o pipefail -c "echo {{ input.subject }}"`, "the -c argument of sh is shell code"},
		{`python3 -c "print('{{ input.subject }}')"`, "the -c argument of python3 is code"},
		{`perl -ne 'print "{{ input.subject }}"'`, "the -e argument of perl is code"},
		{`node --eval "{{ input.subject }}"`, "the --eval argument of node is code"},
		{`awk '{print "{{ input.subject }}"}' f`, "the program of awk is code"},
		{`sed "s/x/{{ input.subject }}/" f`, "the program of sed is code"},
		{`source ./{{ input.subject }}.sh`, "source runs the file"},
		{`. {{ input.subject }}`, ". runs the file"},
		{`bash ./scripts/{{ input.subject }}.sh`, "bash runs the file"},
		{`{{ input.subject }} --version`, "the program to run comes from a {{ }} value"},
		{`echo "$(eval {{ input.subject }})"`, "eval runs its arguments"},
		{`bash -c "$(printf %s {{ input.subject }})"`, "the -c argument of bash"},
		{`ssh host echo {{ input.subject }}`, "ssh runs its command through the remote shell"},
		{"cat <<'EOF'\n{{ input.subject }}\nEOF", "quoted here-document (<<'EOF')"},
		{"cat <<\"EOF\"\n{{ input.subject }}\nEOF", "quoted here-document"},
		{"bash <<EOF\necho {{ input.subject }}\nEOF", "here-document that bash reads as code"},
		{"echo $(( {{ input.count }} + 1 ))", "shell arithmetic"},
		{`echo $(( "{{ input.count }}" + 1 ))`, "shell arithmetic"},
		{`echo $(( $(printf %s "{{ input.count }}") + 1 ))`, "shell arithmetic"},
		{"bash <<EOF\necho \"$(printf %s {{ input.subject }})\"\nEOF", "here-document that bash reads as code"},
		{"(( {{ input.count }} > 1 ))", "shell arithmetic"},
		{"let x={{ input.count }}", "let evaluates arithmetic"},
		{`[[ "{{ input.count }}" -gt 1 ]]`, "[[ … -gt … ]] evaluates its operands as arithmetic"},
		{`a[{{ input.count }}]=1`, "an array subscript is arithmetic"},
		{`echo ${X:-{{ input.count }}}`, "inside ${…}"},
		{`echo \{{ input.count }}`, "right after a backslash"},
		{`echo ${{ input.count }}`, "right after $"},
		{`watch echo {{ input.count }}`, "watch runs its arguments as code"},
		{`env -S "echo {{ input.count }}"`, "env -S splits"},
		{`echo "{{ input.subject }}" | bash`, "piped into bash"},
		{`printf '%s' "{{ input.subject }}" | tr a b | sudo sh -s`, "piped into sh"},
	}
	for _, tt := range tests {
		_, err := ParseShell(tt.in, "")
		var te *Error
		if !errors.As(err, &te) || !strings.Contains(te.Msg, tt.want) {
			t.Errorf("ParseShell(%q): error %v, want one saying %q", tt.in, err, tt.want)
			continue
		}
		if !strings.HasPrefix(tt.in[te.Offset:], "{{") {
			t.Errorf("ParseShell(%q): error at offset %d, not at a {{", tt.in, te.Offset)
		}
	}
}

// payloads are values an attacker sends, each trying another way to
// become code.
var payloads = []string{
	`"; echo INJECTED $(id); "`,
	"`id` $(id) ${PATH} $PATH",
	`'; id; echo '`,
	"a\nid\nb",
	`\" \' \\ $'\x41' * ? [a] ~ {a,b}`,
	"EOF\nid\nEOF",
	"  leading and trailing  ",
	"",
	"-n",
	"a[$(echo INJECTED >&2)]",
}

// TestShellLineBash runs rendered lines with bash and sh: each prints the
// value exactly, whatever it holds.
func TestShellLineBash(t *testing.T) {
	t.Parallel()
	lines := []struct{ line, want string }{
		{`printf '%s|' "got {{ input.subject }}"`, "got V|"},
		{`printf '%s|' {{ input.subject }}`, "V|"},
		{`printf '%s|' x{{ input.subject }}y`, "xVy|"},
		{`printf '%s|' 'a{{ input.subject }}b'`, "aVb|"},
		{`printf '%s|' "$(printf %s {{ input.subject }})"`, "V|"},
		{"printf '%s|' \"`printf %s {{ input.subject }}`\"", "V|"},
		{"cat <<EOF\n{{ input.subject }}|\nEOF", "V|\n"},
		{`bash -c 'printf "%s|" "$1"' _ "{{ input.subject }}"`, "V|"},
		{`case "{{ input.subject }}" in *) printf '%s|' {{ input.subject }};; esac`, "V|"},
	}
	for _, shell := range []string{"bash", "sh"} {
		for _, l := range lines {
			sl, err := ParseShell(l.line, shell)
			if err != nil {
				t.Fatalf("ParseShell(%q): %v", l.line, err)
			}
			for _, p := range payloads {
				line, vars, err := sl.Render(&Context{Input: map[string]string{"subject": p}})
				if err != nil {
					t.Fatal(err)
				}
				got := runShell(t, shell, line, vars)
				if want := strings.ReplaceAll(l.want, "V", p); got != want {
					t.Errorf("%s: %s with %q\n got %q\nwant %q", shell, l.line, p, got, want)
				}
			}
		}
	}
}

func TestShellLineRejectsNUL(t *testing.T) {
	t.Parallel()
	sl, err := ParseShell("echo {{ input.subject }}", "")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := sl.Render(&Context{Input: map[string]string{"subject": "a\x00b"}}); err == nil || !strings.Contains(err.Error(), "NUL") {
		t.Fatalf("Render with a NUL: error %v, want one naming the NUL", err)
	}
}

// runShell runs line with shell and vars in an otherwise empty
// environment, and returns its standard output; stderr must stay empty.
func runShell(t testing.TB, shell, line string, vars map[string]string) string {
	t.Helper()
	cmd := exec.Command(shell, "-c", line)
	cmd.Env = []string{"PATH=" + os.Getenv("PATH")}
	for k, v := range vars {
		cmd.Env = append(cmd.Env, k+"="+v)
	}
	var stdout, stderr strings.Builder
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	if err := cmd.Run(); err != nil || stderr.Len() > 0 {
		t.Fatalf("%s -c %q: %v, stderr %q", shell, line, err, stderr.String())
	}
	return stdout.String()
}

// TestShellLineStructuredValues renders navigated values and whole
// structured outputs into run lines: a leaf arrives as it is, a structure
// as its compact JSON, and neither becomes code, whatever it holds.
func TestShellLineStructuredValues(t *testing.T) {
	t.Parallel()
	for _, shell := range []string{"bash", "sh"} {
		sl, err := ParseShell(`printf '%s|' {{ steps.api.outputs.json.v }} "{{ steps.api.outputs.json }}" {{ steps.api.outputs.json.list[0] }}`, shell)
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range payloads {
			json := map[string]any{"v": p, "list": []any{p}}
			c := &Context{Steps: map[string]StepContext{"api": {Outputs: routine.Outputs{"json": json}}}}
			line, vars, err := sl.Render(c)
			if err != nil {
				t.Fatal(err)
			}
			text, _ := routine.JSONText(json)
			if got, want := runShell(t, shell, line, vars), p+"|"+text+"|"+p+"|"; got != want {
				t.Errorf("%s with %q\n got %q\nwant %q", shell, p, got, want)
			}
		}
	}
}
