package imagewrite

import (
	"regexp"
	"strings"
)

var (
	tagRe       = regexp.MustCompile(`^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$`)
	componentRe = regexp.MustCompile(`^[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*$`)
	domainRe    = regexp.MustCompile(`^(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?)*(?::[0-9]+)?$`)
)

// normalizeTag checks a NAME[:TAG] reference (docker's grammar, without digests) and adds ":latest"
// when the tag is missing.
func normalizeTag(s string) (string, error) {
	name, tag := splitTag(s)
	if tag == "" {
		if strings.HasSuffix(s, ":") {
			return "", errorf(ErrInvalid, "tag %q: empty tag", clip(s))
		}
		tag = "latest"
	}
	if strings.Contains(s, "@") {
		return "", errorf(ErrInvalid, "tag %q: digests cannot be tags", clip(s))
	}
	if !tagRe.MatchString(tag) {
		return "", errorf(ErrInvalid, "tag %q: invalid tag %q", clip(s), clip(tag))
	}
	if name == "" || len(name) > 255 {
		return "", errorf(ErrInvalid, "tag %q: invalid name", clip(s))
	}
	parts := strings.Split(name, "/")
	if len(parts) > 1 && isDomain(parts[0]) {
		if !domainRe.MatchString(parts[0]) {
			return "", errorf(ErrInvalid, "tag %q: invalid registry %q", clip(s), clip(parts[0]))
		}
		parts = parts[1:]
	}
	for _, p := range parts {
		if !componentRe.MatchString(p) {
			return "", errorf(ErrInvalid, "tag %q: invalid name component %q (lower case letters, digits and separators)", clip(s), clip(p))
		}
	}
	return name + ":" + tag, nil
}

// isDomain says whether the first component of a name is a registry host, as docker decides.
func isDomain(s string) bool {
	return strings.ContainsAny(s, ".:") || s == "localhost" || strings.ToLower(s) != s
}

// splitTag splits NAME:TAG at the colon after the last slash; tag is "" when there is none.
func splitTag(s string) (name, tag string) {
	i := strings.LastIndexByte(s, ':')
	if i < 0 || strings.LastIndexByte(s, '/') > i {
		return s, ""
	}
	return s[:i], s[i+1:]
}

// fullName spells a normalised NAME:TAG in full, as docker does: docker.io/ for names without a
// registry, library/ for single-component names on docker.io.
func fullName(t string) string {
	first, rest, ok := strings.Cut(t, "/")
	if ok && (first == "docker.io" || first == "index.docker.io") {
		if !strings.Contains(rest, "/") {
			rest = "library/" + rest
		}
		return "docker.io/" + rest
	}
	if ok && isDomain(first) {
		return t
	}
	if !ok {
		return "docker.io/library/" + t
	}
	return "docker.io/" + first + "/" + rest
}
