package imagewrite

import (
	"encoding/json"
	"fmt"
	"path"
	"regexp"
	"strconv"
	"strings"
	"time"
)

// Change is one Dockerfile instruction applied to an image config, as `docker commit --change` takes
// it. ParseChange makes one; Write applies them.
//
// The instructions and what they do to the container config:
//
//   - CMD, ENTRYPOINT: a JSON array of strings (exec form), or else a command line run by the config's
//     Shell (default ["/bin/sh", "-c"], ["cmd", "/S", "/C"] for windows images). ENTRYPOINT drops the inherited Cmd unless a CMD is among the
//     same changes. An empty JSON array clears the field.
//   - ENV k=v ... (or the legacy ENV k v...): sets variables, replacing an existing one of the same name
//     in place, else appending.
//   - LABEL k=v ... (or LABEL k v...): sets labels.
//   - EXPOSE port[-end][/tcp|udp|sctp] ...: adds exposed ports ("80" is "80/tcp"; ranges add each).
//   - VOLUME: a JSON array or a list of paths: adds volumes.
//   - USER, WORKDIR (relative: resolved against the current one), STOPSIGNAL: set the field.
//   - ONBUILD INSTRUCTION ...: appends a trigger, as written.
//   - HEALTHCHECK NONE, or HEALTHCHECK [--interval=D] [--timeout=D] [--start-period=D]
//     [--start-interval=D] [--retries=N] CMD command (exec or shell form): replaces the health check.
//
// ENV, LABEL, EXPOSE, VOLUME, USER, WORKDIR and STOPSIGNAL arguments are processed as Dockerfile words:
// single and double quotes, backslash escapes, and $VAR, ${VAR}, ${VAR:-word}, ${VAR-word},
// ${VAR:+word}, ${VAR+word}, ${VAR:?message} and ${VAR?message} expanded from the config's Env as it
// was before the instruction.
type Change struct {
	// Instruction is the instruction's name in upper case.
	Instruction string
	// Args is the rest of the line, trimmed.
	Args string

	exec   []string // CMD, ENTRYPOINT, VOLUME: the exec (JSON array) form, when isExec
	isExec bool
	health *healthcheck
}

// healthcheck is docker's HealthConfig as it appears in an image config.
type healthcheck struct {
	Test          []string `json:"Test"`
	Interval      int64    `json:"Interval,omitempty"`
	Timeout       int64    `json:"Timeout,omitempty"`
	StartPeriod   int64    `json:"StartPeriod,omitempty"`
	StartInterval int64    `json:"StartInterval,omitempty"`
	Retries       int      `json:"Retries,omitempty"`
}

// maxChange bounds the length of one change line.
const maxChange = 64 << 10

// changeInstructions are the instructions docker commit --change accepts.
var changeInstructions = []string{"CMD", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "ONBUILD", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

// onbuildInstructions are the instructions an ONBUILD trigger may hold.
var onbuildInstructions = []string{"ADD", "ARG", "CMD", "COPY", "ENTRYPOINT", "ENV", "EXPOSE", "HEALTHCHECK", "LABEL", "RUN", "SHELL", "STOPSIGNAL", "USER", "VOLUME", "WORKDIR"}

var signalRe = regexp.MustCompile(`^(?:[0-9]+|(?i:(?:SIG)?[A-Z][A-Z0-9]*(?:[+-][0-9]+)?))$`)

// ParseChange parses one --change line such as `CMD ["nginx", "-g", "daemon off;"]`, `ENV A=1 B="two
// words"` or `EXPOSE 80 443/tcp`. The instruction name is case-insensitive. An unknown instruction or a
// malformed argument gives an error wrapping ErrChange. Variables are expanded when the change is
// applied, against the config it is applied to.
func ParseChange(line string) (Change, error) {
	c, err := parseChange(line)
	if err != nil {
		return Change{}, errorf(ErrChange, "change %q: %w", clip(line), err)
	}
	return c, nil
}

func parseChange(line string) (Change, error) {
	if len(line) > maxChange {
		return Change{}, fmt.Errorf("longer than %d bytes", maxChange)
	}
	line = strings.TrimSpace(line)
	if line == "" {
		return Change{}, fmt.Errorf("empty")
	}
	word, rest := cutSpace(line)
	c := Change{Instruction: strings.ToUpper(word), Args: rest}
	if !contains(changeInstructions, c.Instruction) {
		return c, fmt.Errorf("unknown instruction %q (want one of %s)", clip(word), strings.Join(changeInstructions, ", "))
	}
	if c.Args == "" {
		return c, fmt.Errorf("%s needs an argument", c.Instruction)
	}
	noEnv := lexer{syntax: true}
	switch c.Instruction {
	case "CMD", "ENTRYPOINT":
		c.exec, c.isExec = parseExec(rest)
	case "VOLUME":
		c.exec, c.isExec = parseExec(rest)
		if _, err := volumes(noEnv, c); err != nil {
			return c, err
		}
	case "ENV", "LABEL":
		if _, err := nameValues(noEnv, c.Instruction, rest); err != nil {
			return c, err
		}
	case "EXPOSE":
		words, err := noEnv.words(rest)
		if err != nil {
			return c, err
		}
		if !strings.Contains(rest, "$") {
			if _, err := ports(words); err != nil {
				return c, err
			}
		}
	case "USER", "WORKDIR":
		if _, err := noEnv.word(rest); err != nil {
			return c, err
		}
	case "STOPSIGNAL":
		s, err := noEnv.word(rest)
		if err != nil {
			return c, err
		}
		if !strings.Contains(rest, "$") && !signalRe.MatchString(s) {
			return c, fmt.Errorf("invalid signal %q", clip(s))
		}
	case "ONBUILD":
		inner, _ := cutSpace(rest)
		switch up := strings.ToUpper(inner); {
		case up == "ONBUILD":
			return c, fmt.Errorf("chaining ONBUILD via ONBUILD ONBUILD is not allowed")
		case up == "FROM" || up == "MAINTAINER":
			return c, fmt.Errorf("%s is not allowed as an ONBUILD trigger", up)
		case !contains(onbuildInstructions, up):
			return c, fmt.Errorf("unknown ONBUILD instruction %q", clip(inner))
		}
	case "HEALTHCHECK":
		h, err := parseHealthcheck(rest)
		if err != nil {
			return c, err
		}
		c.health = h
	}
	return c, nil
}

// cutSpace splits s at its first run of blanks.
func cutSpace(s string) (first, rest string) {
	i := strings.IndexAny(s, " \t\r\n")
	if i < 0 {
		return s, ""
	}
	return s[:i], strings.TrimSpace(s[i:])
}

// parseExec reads the exec form, a JSON array of strings. Anything else is the shell form (as docker
// decides).
func parseExec(s string) ([]string, bool) {
	if !strings.HasPrefix(s, "[") {
		return nil, false
	}
	var a []string
	if json.Unmarshal([]byte(s), &a) != nil || a == nil {
		return nil, false
	}
	return a, true
}

func parseHealthcheck(s string) (*healthcheck, error) {
	word, rest := cutSpace(s)
	if strings.EqualFold(word, "NONE") {
		if rest != "" {
			return nil, fmt.Errorf("HEALTHCHECK NONE takes no arguments")
		}
		return &healthcheck{Test: []string{"NONE"}}, nil
	}
	h := &healthcheck{}
	seen := map[string]bool{}
	for strings.HasPrefix(word, "--") {
		name, val, ok := strings.Cut(word[2:], "=")
		if !ok {
			return nil, fmt.Errorf("HEALTHCHECK flag %q: want --%s=VALUE", clip(word), clip(name))
		}
		if seen[name] {
			return nil, fmt.Errorf("HEALTHCHECK flag --%s given twice", clip(name))
		}
		seen[name] = true
		var err error
		switch name {
		case "interval":
			h.Interval, err = healthDuration(name, val)
		case "timeout":
			h.Timeout, err = healthDuration(name, val)
		case "start-period":
			h.StartPeriod, err = healthDuration(name, val)
		case "start-interval":
			h.StartInterval, err = healthDuration(name, val)
		case "retries":
			var n int64
			n, err = strconv.ParseInt(val, 10, 32)
			if err != nil || n < 0 {
				err = fmt.Errorf("HEALTHCHECK --retries=%q: want a number of at least 0", clip(val))
			}
			h.Retries = int(n)
		default:
			err = fmt.Errorf("unknown HEALTHCHECK flag --%s", clip(name))
		}
		if err != nil {
			return nil, err
		}
		word, rest = cutSpace(rest)
	}
	if !strings.EqualFold(word, "CMD") {
		return nil, fmt.Errorf("HEALTHCHECK: want NONE or [flags] CMD command, found %q", clip(word))
	}
	if rest == "" {
		return nil, fmt.Errorf("HEALTHCHECK CMD needs a command")
	}
	if a, ok := parseExec(rest); ok {
		if len(a) == 0 {
			return nil, fmt.Errorf("HEALTHCHECK CMD needs a command")
		}
		h.Test = append([]string{"CMD"}, a...)
	} else {
		h.Test = []string{"CMD-SHELL", rest}
	}
	return h, nil
}

// healthDuration parses a health check duration: 0, or at least 1ms.
func healthDuration(name, s string) (int64, error) {
	d, err := time.ParseDuration(s)
	if err != nil || d < 0 || d > 0 && d < time.Millisecond {
		return 0, fmt.Errorf("HEALTHCHECK --%s=%q: want a duration of 0 or at least 1ms", name, clip(s))
	}
	return int64(d), nil
}

// nameValues parses ENV and LABEL arguments: name=value words, or the legacy "name value..." form.
func nameValues(lx lexer, instr, s string) ([][2]string, error) {
	raw, err := rawWords(s)
	if err != nil {
		return nil, err
	}
	if len(raw) == 0 {
		return nil, fmt.Errorf("%s needs an argument", instr)
	}
	var pairs [][2]string
	if !strings.Contains(raw[0], "=") {
		first, rest := cutSpace(s)
		if rest == "" {
			return nil, fmt.Errorf("%s %s: want NAME=VALUE", instr, clip(first))
		}
		k, err := lx.word(first)
		if err != nil {
			return nil, err
		}
		v, err := lx.word(rest)
		if err != nil {
			return nil, err
		}
		pairs = append(pairs, [2]string{k, v})
	} else {
		for _, w := range raw {
			k, v, ok := strings.Cut(w, "=")
			if !ok {
				return nil, fmt.Errorf("%s: no = in %q: want NAME=VALUE", instr, clip(w))
			}
			if k, err = lx.word(k); err != nil {
				return nil, err
			}
			if v, err = lx.word(v); err != nil {
				return nil, err
			}
			pairs = append(pairs, [2]string{k, v})
		}
	}
	for _, p := range pairs {
		if p[0] == "" {
			return nil, fmt.Errorf("%s: empty name", instr)
		}
		if instr == "ENV" && strings.ContainsAny(p[0], "= \t\n\x00") {
			return nil, fmt.Errorf("ENV: invalid name %q", clip(p[0]))
		}
	}
	return pairs, nil
}

var portRe = regexp.MustCompile(`^([0-9]{1,5})(?:-([0-9]{1,5}))?(?:/([A-Za-z]+))?$`)

// ports parses EXPOSE words into "port/proto" keys.
func ports(words []string) ([]string, error) {
	if len(words) == 0 {
		return nil, fmt.Errorf("EXPOSE needs a port")
	}
	var out []string
	for _, w := range words {
		m := portRe.FindStringSubmatch(w)
		if m == nil {
			return nil, fmt.Errorf("EXPOSE %q: want PORT[-END][/tcp|udp|sctp]", clip(w))
		}
		lo, _ := strconv.Atoi(m[1])
		hi := lo
		if m[2] != "" {
			hi, _ = strconv.Atoi(m[2])
		}
		proto := strings.ToLower(m[3])
		if proto == "" {
			proto = "tcp"
		}
		if lo < 1 || hi > 65535 || hi < lo {
			return nil, fmt.Errorf("EXPOSE %q: ports are 1 to 65535, a range low to high", clip(w))
		}
		if proto != "tcp" && proto != "udp" && proto != "sctp" {
			return nil, fmt.Errorf("EXPOSE %q: protocol is tcp, udp or sctp", clip(w))
		}
		for p := lo; p <= hi; p++ {
			out = append(out, strconv.Itoa(p)+"/"+proto)
		}
	}
	return out, nil
}

// volumes lists a VOLUME change's paths.
func volumes(lx lexer, c Change) ([]string, error) {
	var vs []string
	if c.isExec {
		for _, v := range c.exec {
			w, err := lx.word(v)
			if err != nil {
				return nil, err
			}
			vs = append(vs, w)
		}
	} else {
		var err error
		if vs, err = lx.words(c.Args); err != nil {
			return nil, err
		}
	}
	if len(vs) == 0 {
		return nil, fmt.Errorf("VOLUME needs a path")
	}
	for _, v := range vs {
		if strings.TrimSpace(v) == "" {
			return nil, fmt.Errorf("VOLUME: empty path")
		}
	}
	return vs, nil
}

// applyChanges applies changes to the container config object of an image for os.
func applyChanges(cc map[string]json.RawMessage, os string, changes []Change) error {
	hasCmd := false
	for _, c := range changes {
		hasCmd = hasCmd || c.Instruction == "CMD"
	}
	for _, c := range changes {
		if err := applyChange(cc, os, c, hasCmd); err != nil {
			return errorf(ErrChange, "change %s %q: %w", c.Instruction, clip(c.Args), err)
		}
	}
	return nil
}

// applyChange applies one change to container config cc: the instruction picks its rule, each of which
// checks its arguments before it sets a field.
func applyChange(cc map[string]json.RawMessage, os string, c Change, hasCmd bool) error {
	var env []string
	if err := decodeField(cc, "Env", &env); err != nil {
		return err
	}
	lx := lexer{env: env}
	switch c.Instruction {
	case "CMD", "ENTRYPOINT":
		return applyCommand(cc, os, c, hasCmd)
	case "ENV":
		return applyEnv(cc, lx, env, c)
	case "LABEL":
		return applyLabels(cc, lx, c)
	case "EXPOSE":
		words, err := lx.words(c.Args)
		if err != nil {
			return err
		}
		ps, err := ports(words)
		if err != nil {
			return err
		}
		return addKeys(cc, "ExposedPorts", ps)
	case "VOLUME":
		vs, err := volumes(lx, c)
		if err != nil {
			return err
		}
		return addKeys(cc, "Volumes", vs)
	case "USER":
		u, err := lx.word(c.Args)
		if err != nil {
			return err
		}
		if u == "" {
			return fmt.Errorf("empty user")
		}
		setField(cc, "User", u)
	case "WORKDIR":
		return applyWorkdir(cc, lx, c)
	case "STOPSIGNAL":
		s, err := lx.word(c.Args)
		if err != nil {
			return err
		}
		if !signalRe.MatchString(s) {
			return fmt.Errorf("invalid signal %q", clip(s))
		}
		setField(cc, "StopSignal", s)
	case "ONBUILD":
		var triggers []string
		if err := decodeField(cc, "OnBuild", &triggers); err != nil {
			return err
		}
		setField(cc, "OnBuild", append(triggers, c.Args))
	case "HEALTHCHECK":
		if c.health == nil {
			return fmt.Errorf("not parsed")
		}
		setField(cc, "Healthcheck", c.health)
	default:
		return fmt.Errorf("unknown instruction (use ParseChange)")
	}
	return nil
}

// applyCommand applies CMD or ENTRYPOINT: the exec form as given (empty: the field is removed), the
// shell form under the config's Shell (default /bin/sh -c, cmd /S /C for windows). An ENTRYPOINT
// without a CMD among the changes clears the base's Cmd, as docker does.
func applyCommand(cc map[string]json.RawMessage, os string, c Change, hasCmd bool) error {
	field := "Cmd"
	if c.Instruction == "ENTRYPOINT" {
		field = "Entrypoint"
		if !hasCmd {
			delete(cc, "Cmd")
		}
	}
	switch {
	case c.isExec && len(c.exec) == 0:
		delete(cc, field)
	case c.isExec:
		setField(cc, field, c.exec)
	default:
		var shell []string
		if err := decodeField(cc, "Shell", &shell); err != nil {
			return err
		}
		if len(shell) == 0 {
			shell = []string{"/bin/sh", "-c"}
			if os == "windows" {
				shell = []string{"cmd", "/S", "/C"}
			}
		}
		setField(cc, field, append(shell[:len(shell):len(shell)], c.Args))
	}
	return nil
}

// applyEnv applies ENV: each name=value replaces the variable in env (the config's, which lx expands
// with) or is appended.
func applyEnv(cc map[string]json.RawMessage, lx lexer, env []string, c Change) error {
	pairs, err := nameValues(lx, "ENV", c.Args)
	if err != nil {
		return err
	}
	for _, p := range pairs {
		env = setEnv(env, p[0], p[1])
	}
	setField(cc, "Env", env)
	return nil
}

// applyLabels applies LABEL: each name=value is set among the config's labels.
func applyLabels(cc map[string]json.RawMessage, lx lexer, c Change) error {
	pairs, err := nameValues(lx, "LABEL", c.Args)
	if err != nil {
		return err
	}
	labels := map[string]string{}
	if err := decodeField(cc, "Labels", &labels); err != nil {
		return err
	}
	if labels == nil {
		labels = map[string]string{}
	}
	for _, p := range pairs {
		labels[p[0]] = p[1]
	}
	setField(cc, "Labels", labels)
	return nil
}

// applyWorkdir applies WORKDIR: a relative path is joined to the config's working directory.
func applyWorkdir(cc map[string]json.RawMessage, lx lexer, c Change) error {
	w, err := lx.word(c.Args)
	if err != nil {
		return err
	}
	if w == "" {
		return fmt.Errorf("empty path")
	}
	if !path.IsAbs(w) {
		var cur string
		if err := decodeField(cc, "WorkingDir", &cur); err != nil {
			return err
		}
		w = path.Join("/", cur, w)
	}
	setField(cc, "WorkingDir", path.Clean(w))
	return nil
}

// setEnv sets name=value in env, in place when name is there.
func setEnv(env []string, name, value string) []string {
	for i, e := range env {
		if k, _, _ := strings.Cut(e, "="); k == name {
			env[i] = name + "=" + value
			return env
		}
	}
	return append(env, name+"="+value)
}

// addKeys adds keys to the set object cc[field] ({"key": {}}), keeping existing values.
func addKeys(cc map[string]json.RawMessage, field string, keys []string) error {
	set := map[string]json.RawMessage{}
	if err := decodeField(cc, field, &set); err != nil {
		return err
	}
	if set == nil {
		set = map[string]json.RawMessage{}
	}
	for _, k := range keys {
		if _, ok := set[k]; !ok {
			set[k] = json.RawMessage("{}")
		}
	}
	setField(cc, field, set)
	return nil
}
