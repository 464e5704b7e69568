package imagewrite

import (
	"fmt"
	"strings"
)

// lexer processes Dockerfile words: quotes, backslash escapes and variable expansion from env (NAME=value
// entries; the last one of a name wins).
type lexer struct {
	env []string
	// syntax checks syntax only (ParseChange): ${VAR?message} does not fail.
	syntax bool
}

// maxExpansion bounds the length of an expanded word.
const maxExpansion = 1 << 20

func (l lexer) lookup(name string) (string, bool) {
	for i := len(l.env) - 1; i >= 0; i-- {
		if k, v, ok := strings.Cut(l.env[i], "="); ok && k == name {
			return v, true
		}
	}
	return "", false
}

// words splits s at unquoted blanks into processed words.
func (l lexer) words(s string) ([]string, error) {
	w, err := l.process(s, true, 0)
	return w, err
}

// word processes s as one word: blanks are kept.
func (l lexer) word(s string) (string, error) {
	w, err := l.process(s, false, 0)
	if err != nil || len(w) == 0 {
		return "", err
	}
	return w[0], nil
}

func isBlank(c byte) bool { return c == ' ' || c == '\t' || c == '\r' || c == '\n' }

func isNameStart(c byte) bool { return c == '_' || c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func isNameChar(c byte) bool { return isNameStart(c) || c >= '0' && c <= '9' }

func (l lexer) process(s string, split bool, depth int) ([]string, error) {
	if depth > 8 {
		return nil, fmt.Errorf("variables nested too deep")
	}
	var (
		out    []string
		cur    strings.Builder
		inWord bool
	)
	grow := func(s string) error {
		if cur.Len()+len(s) > maxExpansion {
			return fmt.Errorf("word longer than %d bytes", maxExpansion)
		}
		cur.WriteString(s)
		inWord = inWord || s != ""
		return nil
	}
	// expandAt appends the value of the variable reference at s[i:], quoted or not, and returns the
	// index after the reference.
	expandAt := func(i int) (int, error) {
		v, n, err := l.expand(s[i:], depth)
		if err != nil {
			return 0, err
		}
		return i + n, grow(v)
	}
	var err error
	for i := 0; i < len(s); {
		c := s[i]
		switch {
		case split && isBlank(c):
			if inWord {
				out = append(out, cur.String())
				cur.Reset()
				inWord = false
			}
			i++
		case c == '\\':
			if i+1 < len(s) {
				if err := grow(s[i+1 : i+2]); err != nil {
					return nil, err
				}
				i += 2
			} else {
				if err := grow(`\`); err != nil {
					return nil, err
				}
				i++
			}
		case c == '\'':
			j := strings.IndexByte(s[i+1:], '\'')
			if j < 0 {
				return nil, fmt.Errorf("unterminated single quote")
			}
			if err := grow(s[i+1 : i+1+j]); err != nil {
				return nil, err
			}
			inWord = true
			i += j + 2
		case c == '"':
			i++
			closed := false
			for i < len(s) && !closed {
				switch c := s[i]; {
				case c == '"':
					closed = true
					i++
				case c == '\\' && i+1 < len(s) && strings.IndexByte("\"\\$", s[i+1]) >= 0:
					if err := grow(s[i+1 : i+2]); err != nil {
						return nil, err
					}
					i += 2
				case c == '$':
					if i, err = expandAt(i); err != nil {
						return nil, err
					}
				default:
					if err := grow(s[i : i+1]); err != nil {
						return nil, err
					}
					i++
				}
			}
			if !closed {
				return nil, fmt.Errorf("unterminated double quote")
			}
			inWord = true
		case c == '$':
			if i, err = expandAt(i); err != nil {
				return nil, err
			}
		default:
			if err := grow(s[i : i+1]); err != nil {
				return nil, err
			}
			i++
		}
	}
	if inWord || !split {
		out = append(out, cur.String())
	}
	return out, nil
}

// expand expands the variable reference at the start of s ("$..."), returning its value and how many
// bytes it took. A "$" not followed by a name or "{" is literal.
func (l lexer) expand(s string, depth int) (string, int, error) {
	if len(s) < 2 {
		return "$", 1, nil
	}
	if isNameStart(s[1]) {
		j := 2
		for j < len(s) && isNameChar(s[j]) {
			j++
		}
		v, _ := l.lookup(s[1:j])
		return v, j, nil
	}
	if s[1] != '{' {
		return "$", 1, nil
	}
	// ${...}: find the matching brace, skipping nested ${ and quoted text.
	end, nest := -1, 0
	for j := 2; j < len(s) && end < 0; j++ {
		switch s[j] {
		case '\\':
			j++
		case '\'':
			k := strings.IndexByte(s[j+1:], '\'')
			if k < 0 {
				return "", 0, fmt.Errorf("unterminated single quote")
			}
			j += k + 1
		case '{':
			if s[j-1] == '$' {
				nest++
			}
		case '}':
			if nest == 0 {
				end = j
			} else {
				nest--
			}
		}
	}
	if end < 0 {
		return "", 0, fmt.Errorf("missing } in %q", clip(s))
	}
	body := s[2:end]
	k := 0
	for k < len(body) && isNameChar(body[k]) {
		k++
	}
	name, op := body[:k], body[k:]
	if name == "" || !isNameStart(name[0]) {
		return "", 0, fmt.Errorf("bad substitution %q", clip(s[:end+1]))
	}
	val, set := l.lookup(name)
	if op == "" {
		return val, end + 1, nil
	}
	colon := strings.HasPrefix(op, ":")
	if colon {
		op = op[1:]
	}
	if op == "" {
		return "", 0, fmt.Errorf("bad substitution %q", clip(s[:end+1]))
	}
	mod, arg := op[0], op[1:]
	present := set && (!colon || val != "")
	word := func() (string, error) {
		w, err := l.process(arg, false, depth+1)
		if err != nil || len(w) == 0 {
			return "", err
		}
		return w[0], nil
	}
	switch mod {
	case '-':
		if present {
			return val, end + 1, nil
		}
		w, err := word()
		return w, end + 1, err
	case '+':
		if !present {
			return "", end + 1, nil
		}
		w, err := word()
		return w, end + 1, err
	case '?':
		if present || l.syntax {
			return val, end + 1, nil
		}
		w, err := word()
		if err != nil {
			return "", 0, err
		}
		if w == "" {
			w = "not set"
		}
		return "", 0, fmt.Errorf("%s: %s", name, clip(w))
	}
	return "", 0, fmt.Errorf("unsupported substitution %q", clip(s[:end+1]))
}

// rawWords splits s at blanks outside quotes and ${...}, keeping quotes and escapes (ENV and LABEL
// find their "=" in these before the words are processed).
func rawWords(s string) ([]string, error) {
	var (
		out   []string
		start = -1
		quote byte
		brace int
	)
	for i := 0; i < len(s); i++ {
		c := s[i]
		if start < 0 && !isBlank(c) {
			start = i
		}
		switch {
		case quote == '\'':
			if c == '\'' {
				quote = 0
			}
		case c == '\\':
			i++
		case quote == '"':
			if c == '"' {
				quote = 0
			}
		case c == '\'' || c == '"':
			quote = c
		case c == '$' && i+1 < len(s) && s[i+1] == '{':
			brace++
			i++
		case c == '}' && brace > 0:
			brace--
		case isBlank(c) && brace == 0 && start >= 0:
			out = append(out, s[start:i])
			start = -1
		}
	}
	if quote != 0 {
		return nil, fmt.Errorf("unterminated quote")
	}
	if brace > 0 {
		return nil, fmt.Errorf("missing }")
	}
	if start >= 0 {
		out = append(out, s[start:])
	}
	return out, nil
}
