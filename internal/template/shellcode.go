package template

import (
	"path"
	"regexp"
	"strings"
)

// codeCommand describes how a program reads code from its arguments, for
// the programs that a run line commonly hands code to.
type codeCommand struct {
	// codeOpts are the letters of options whose argument is code (perl -e);
	// for a shell, -c makes the first operand code.
	codeOpts string
	// argOpts are the letters of the other options that take an argument.
	argOpts string
	// longCode are long options whose argument is code (--eval).
	longCode []string
	// operand is what the first operand is when no code option was given:
	// "script" (a file of code), "program" (code) or "" (data).
	operand string
	shell   bool // -c makes the first operand code, as in sh -c
	stdin   bool // without a script or code option, it runs its stdin
	all     bool // every argument is code
	remote  bool // every operand after the first is code (ssh host cmd)
}

var codeCommands = map[string]codeCommand{
	"eval":    {all: true},
	"trap":    {operand: "program"},
	"alias":   {all: true},
	"watch":   {all: true, argOpts: "dn"},
	"source":  {operand: "script"},
	".":       {operand: "script"},
	"sh":      {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"bash":    {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"dash":    {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"zsh":     {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"ksh":     {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"mksh":    {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"ash":     {shell: true, argOpts: "oO", operand: "script", stdin: true},
	"busybox": {operand: "script"},
	"su":      {codeOpts: "c", argOpts: "gGs", longCode: []string{"--command"}},
	"runuser": {codeOpts: "c", argOpts: "gGsu", longCode: []string{"--command"}},
	"script":  {codeOpts: "c", longCode: []string{"--command"}},
	"flock":   {codeOpts: "c", argOpts: "wE", longCode: []string{"--command"}},
	"python":  {codeOpts: "cm", argOpts: "WXQ", operand: "script", stdin: true},
	"python2": {codeOpts: "cm", argOpts: "WXQ", operand: "script", stdin: true},
	"python3": {codeOpts: "cm", argOpts: "WXQ", operand: "script", stdin: true},
	"pypy3":   {codeOpts: "cm", argOpts: "WXQ", operand: "script", stdin: true},
	"perl":    {codeOpts: "eEMm", argOpts: "I", operand: "script", stdin: true},
	"ruby":    {codeOpts: "er", argOpts: "IC", operand: "script", stdin: true},
	"node":    {codeOpts: "epr", longCode: []string{"--eval", "--print", "--require", "--import"}, operand: "script", stdin: true},
	"nodejs":  {codeOpts: "epr", longCode: []string{"--eval", "--print", "--require", "--import"}, operand: "script", stdin: true},
	"deno":    {operand: "program"},
	"php":     {codeOpts: "rBRE", argOpts: "cdz", operand: "script", stdin: true},
	"lua":     {codeOpts: "el", operand: "script", stdin: true},
	"Rscript": {codeOpts: "e", operand: "script"},
	"awk":     {codeOpts: "f", argOpts: "Fv", operand: "program"},
	"gawk":    {codeOpts: "fei", argOpts: "Fv", operand: "program"},
	"mawk":    {codeOpts: "f", argOpts: "Fv", operand: "program"},
	"nawk":    {codeOpts: "f", argOpts: "Fv", operand: "program"},
	"sed":     {codeOpts: "ef", argOpts: "l", longCode: []string{"--expression", "--file"}, operand: "program"},
	"gsed":    {codeOpts: "ef", argOpts: "l", longCode: []string{"--expression", "--file"}, operand: "program"},
	"ssh":     {argOpts: "BbcDEeFIiJLlmOopQRSWw", remote: true},
}

// wrappers run the command that follows their options (and their own
// operands), so a line's real command is found after them.
var wrappers = map[string]struct {
	argOpts  string
	operands int // operands of the wrapper itself, before the command
}{
	"sudo": {argOpts: "ugCDhprtUT"}, "doas": {argOpts: "uC"}, "env": {argOpts: "uC"},
	"nice": {argOpts: "n"}, "ionice": {argOpts: "cnp"}, "timeout": {argOpts: "sk", operands: 1},
	"stdbuf": {argOpts: "ioe"}, "setsid": {}, "nohup": {}, "exec": {argOpts: "a"},
	"command": {}, "builtin": {}, "time": {argOpts: "fo"}, "chroot": {operands: 1},
	"taskset": {operands: 1}, "chrt": {operands: 1}, "xargs": {argOpts: "IdnPLsaE"},
	"unbuffer": {}, "strace": {argOpts: "eopsSPuI"}, "ltrace": {argOpts: "eopsSnu"},
	"systemd-run": {argOpts: "pu"}, "unshare": {}, "nsenter": {argOpts: "tS"},
}

var (
	assignment = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*(\[[^]]*\])?\+?=`)
	// subscript: a segment inside the [ ] of an array name, which bash
	// evaluates as arithmetic.
	subscript = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]*\[[^]]*\x00`)
)

const (
	fixArgument = "pass the value as an argument after the code ($1) or through env:, where the code reads it as data"
	fixArith    = "check that it is a number first ([[ $V =~ ^[0-9]+$ ]]) or compute it in the expression"
)

// codeArgs returns, for each word of a simple command (a NUL stands for a
// segment), why a {{ }} value in it would be code, or "". test is set for
// [[ … ]].
func codeArgs(words []string, test bool) []string {
	why := make([]string, len(words))
	if test {
		for _, w := range words {
			switch w {
			case "-eq", "-ne", "-lt", "-le", "-gt", "-ge":
				for i := range words {
					why[i] = "[[ … " + w + " … ]] evaluates its operands as arithmetic, which runs $(cmd) in a[$(cmd)]: compare with [ … " + w + " … ], which does not, or " + fixArith
				}
				return why
			}
		}
		return why
	}
	i := commandAt(words, why)
	if i >= len(words) {
		return why
	}
	name := path.Base(words[i])
	if strings.Contains(words[i], "\x00") {
		why[i] = "the program to run comes from a {{ }} value: name the program literally (a case statement can choose among known ones)"
		return why
	}
	switch name {
	case "let":
		markFrom(why, i+1, "let evaluates arithmetic, which runs $(cmd) in a[$(cmd)]: "+fixArith)
		return why
	case "declare", "typeset", "local", "export", "readonly", "unset":
		for j := i + 1; j < len(words); j++ {
			if subscript.MatchString(words[j]) {
				why[j] = "an array subscript is arithmetic, which runs $(cmd) in a[$(cmd)]: " + fixArith
			}
		}
		return why
	}
	cmd, ok := codeCommands[name]
	if !ok {
		return why
	}
	if cmd.all {
		markFrom(why, i+1, name+" runs its arguments as code, a {{ }} value in them too: run the command itself, with the value as an argument")
		return why
	}
	codeGiven, cmode, operand := false, false, 0
	for j := i + 1; j < len(words); j++ {
		w := words[j]
		if operand == 0 && len(w) > 1 && (w[0] == '-' || cmd.shell && w[0] == '+') && w != "--" {
			if strings.HasPrefix(w, "--") {
				for _, l := range cmd.longCode {
					switch {
					case w == l && j+1 < len(words):
						j++
						why[j] = "the " + l + " argument of " + name + " is code: " + fixArgument
						codeGiven = true
					case strings.HasPrefix(w, l+"="):
						why[j] = "the " + l + " argument of " + name + " is code: " + fixArgument
						codeGiven = true
					}
				}
				continue
			}
			for k := 1; k < len(w); k++ {
				o := w[k]
				switch {
				case cmd.shell && o == 'c':
					cmode = true
				case strings.IndexByte(cmd.codeOpts, o) >= 0:
					codeGiven = true
					msg := "the -" + string(o) + " argument of " + name + " is code: " + fixArgument
					if k+1 < len(w) {
						why[j] = msg
					} else if j+1 < len(words) {
						j++
						why[j] = msg
					}
					k = len(w)
				case strings.IndexByte(cmd.argOpts, o) >= 0:
					if k+1 == len(w) {
						j++
					}
					k = len(w)
				}
			}
			continue
		}
		if w == "--" && operand == 0 {
			continue
		}
		operand++
		switch {
		case operand == 1 && cmode:
			why[j] = "the -c argument of " + name + " is shell code, a {{ }} value in it too: " + fixArgument + ", as in " + name + ` -c 'echo "$1"' _ "{{ … }}"`
		case operand == 1 && cmd.remote:
		case operand > 1 && cmd.remote:
			why[j] = name + " runs its command through the remote shell, a {{ }} value in it too: quote the value for the remote shell in the expression, or send it on stdin"
		case operand == 1 && !codeGiven && cmd.operand == "program":
			why[j] = "the program of " + name + " is code, a {{ }} value in it too: " + fixArgument
		case operand == 1 && !codeGiven && cmd.operand == "script":
			why[j] = name + " runs the file a {{ }} value names: name the script literally and pass the value as its argument"
		}
	}
	return why
}

// commandAt returns the index of the program a simple command runs: after
// its assignments and the wrappers that run a command (sudo, env, timeout).
// It notes in why the words that are code already there.
func commandAt(words, why []string) int {
	i := 0
	for ; i < len(words) && assignment.MatchString(words[i]); i++ {
		if subscript.MatchString(words[i]) {
			why[i] = "an array subscript is arithmetic, which runs $(cmd) in a[$(cmd)]: " + fixArith
		}
	}
	for i < len(words) {
		w, ok := wrappers[path.Base(words[i])]
		if !ok {
			break
		}
		if words[i] != "env" {
			i = skipOptions(words, i+1, w.argOpts) + w.operands
			continue
		}
		for i++; i < len(words) && (assignment.MatchString(words[i]) || strings.HasPrefix(words[i], "-")); i++ {
			if strings.HasPrefix(words[i], "-S") || strings.HasPrefix(words[i], "--split-string") {
				markFrom(why, i, "env -S splits its argument into a command line: write the command without env -S")
				return len(words)
			}
		}
	}
	return i
}

// skipOptions returns the index of the first word from i on that is not an
// option of a wrapper (or the argument of one).
func skipOptions(words []string, i int, argOpts string) int {
	for ; i < len(words); i++ {
		w := words[i]
		if w == "--" {
			return i + 1
		}
		if len(w) < 2 || w[0] != '-' {
			return i
		}
		if !strings.HasPrefix(w, "--") && strings.IndexByte(argOpts, w[len(w)-1]) >= 0 {
			i++
		}
	}
	return i
}

func markFrom(why []string, i int, msg string) {
	for ; i < len(why); i++ {
		why[i] = msg
	}
}

// stdinCode returns the program of cmd when it runs its standard input as
// code (bash, python3 without a script), else "".
func stdinCode(cmd []string) string {
	i := commandAt(cmd, make([]string, len(cmd)))
	if i >= len(cmd) {
		return ""
	}
	name := path.Base(cmd[i])
	c, ok := codeCommands[name]
	if !ok || !c.stdin {
		return ""
	}
	for _, w := range cmd[i+1:] {
		if w == "-" || w == "-s" {
			return name
		}
		if !strings.HasPrefix(w, "-") {
			return "" // a script: the here-document is its input
		}
		if c.shell && strings.ContainsRune(w, 'c') || strings.ContainsAny(w[1:], c.codeOpts) && c.codeOpts != "" {
			return ""
		}
	}
	return name
}
