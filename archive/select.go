package archive

import (
	"fmt"
	"strings"

	"github.com/opencontainers/go-digest"
	ispec "github.com/opencontainers/image-spec/specs-go/v1"
)

// minDigestPrefix is the shortest hex prefix accepted as a digest reference.
const minDigestPrefix = 12

// isHexDigits says whether s, a digest prefix a user typed, is lowercase hex digits only.
func isHexDigits(s string) bool { return strings.Trim(s, "0123456789abcdef") == "" }

// selectEntry picks the entry ref and platform designate (see Archive.Image).
func (a *Archive) selectEntry(ref string, want *ispec.Platform) (*entry, error) {
	if len(a.entries) == 0 {
		if len(a.skipped) > 0 {
			return nil, errorf(ErrNotFound, "no images in the archive (skipped: %s)", strings.Join(a.skipped, "; "))
		}
		return nil, errorf(ErrNotFound, "no images in the archive")
	}
	cands, err := a.match(ref)
	if err != nil {
		return nil, err
	}
	if len(cands) == 0 {
		return nil, errorf(ErrNotFound, "no image matches %q (images: %s)", clip(ref), describeEntries(a.entries))
	}
	if !oneGroup(cands) {
		if ref == "" {
			return nil, errorf(ErrAmbiguous, "the archive holds several images, choose one by name or digest: %s", describeEntries(cands))
		}
		return nil, errorf(ErrAmbiguous, "%q matches several images, choose one by name or digest: %s", clip(ref), describeEntries(cands))
	}
	if len(cands) == 1 {
		e := cands[0]
		if want != nil && e.ref.Platform != nil && platformScore(*want, *e.ref.Platform) == 0 {
			return nil, errorf(ErrPlatform, "no image for platform %s (the image is %s)", FormatPlatform(*want), FormatPlatform(*e.ref.Platform))
		}
		return e, nil
	}
	w := HostPlatform()
	if want != nil {
		w = *want
	}
	var best *entry
	bestScore := 0
	for _, e := range cands {
		if e.ref.Platform == nil {
			continue
		}
		if s := platformScore(w, *e.ref.Platform); s > bestScore {
			best, bestScore = e, s
		}
	}
	if best == nil {
		var ps []string
		for _, e := range cands {
			ps = append(ps, entryPlatform(e))
		}
		return nil, errorf(ErrPlatform, "no image for platform %s (platforms: %s)", FormatPlatform(w), strings.Join(ps, ", "))
	}
	return best, nil
}

// oneGroup says whether the candidates are one image: one top-level entry (maybe several platforms), or
// the same manifest reached twice.
func oneGroup(cands []*entry) bool {
	for _, e := range cands[1:] {
		if e.ref.Index != cands[0].ref.Index && (e.ref.ManifestDigest == "" || e.ref.ManifestDigest != cands[0].ref.ManifestDigest) {
			return false
		}
	}
	return true
}

// match returns the entries ref designates, before platform selection.
func (a *Archive) match(ref string) ([]*entry, error) {
	if ref == "" {
		return a.entries, nil
	}
	if _, d, ok := strings.Cut(ref, "@"); ok {
		if err := checkDigest(digest.Digest(d)); err != nil {
			return nil, errorf(ErrNotFound, "reference %q: %w", clip(ref), err)
		}
		return a.matchDigest(d), nil
	}
	if alg, hex, ok := strings.Cut(ref, ":"); ok && (alg == "sha256" || alg == "sha512") {
		if len(hex) < minDigestPrefix || !isHexDigits(hex) {
			return nil, errorf(ErrNotFound, "reference %q: want %s: and at least %d lowercase hex digits", clip(ref), alg, minDigestPrefix)
		}
		return a.matchDigest(ref), nil
	}
	if len(ref) >= minDigestPrefix && isHexDigits(ref) {
		if c := a.matchDigest(ref); len(c) > 0 {
			return c, nil
		}
	}
	best := 0
	var cands []*entry
	for _, e := range a.entries {
		t := 0
		for _, n := range e.ref.Names {
			if nt := nameTier(ref, n); nt > 0 && (t == 0 || nt < t) {
				t = nt
			}
		}
		switch {
		case t == 0:
		case best == 0 || t < best:
			best, cands = t, []*entry{e}
		case t == best:
			cands = append(cands, e)
		}
	}
	return cands, nil
}

// matchDigest returns the entries whose manifest, config or enclosing index digest is d or starts with
// the prefix d ("sha256:<hex>", "<hex>").
func (a *Archive) matchDigest(d string) []*entry {
	alg, hex, ok := strings.Cut(d, ":")
	if !ok {
		alg, hex = "", d
	}
	has := func(x digest.Digest) bool {
		return x != "" && (alg == "" || string(x.Algorithm()) == alg) && strings.HasPrefix(x.Encoded(), hex)
	}
	var out []*entry
	for _, e := range a.entries {
		hit := has(e.ref.ManifestDigest) || has(e.config)
		for _, p := range e.parents {
			hit = hit || has(p)
		}
		if hit {
			out = append(out, e)
		}
	}
	return out
}

// nameTier says how well ref designates an image named name: 1 the same reference (docker.io/ and
// library/ normalised, "latest" implied), 2 the same but for name's registry, 3 ref is a bare tag equal
// to name's tag; 0 no match. A name without "/" or ":" is a bare tag (an OCI ref.name) and matches
// only itself.
func nameTier(ref, name string) int {
	if ref == name {
		return 1
	}
	if !strings.ContainsAny(name, "/:@") {
		return 0
	}
	nr, nn := normalizeName(ref), normalizeName(name)
	switch {
	case nr == nn:
		return 1
	case nr == stripRegistry(nn):
		return 2
	case !strings.ContainsAny(ref, "/:@") && tagOf(name) == ref:
		return 3
	}
	return 0
}

// splitName splits "repo[:tag][@digest]" into repo and tag ("" when absent).
func splitName(s string) (repo, tag string) {
	s, _, _ = strings.Cut(s, "@")
	if i := strings.LastIndexByte(s, ':'); i > strings.LastIndexByte(s, '/') {
		return s[:i], s[i+1:]
	}
	return s, ""
}

// tagOf is the tag of a name, "latest" when it has none.
func tagOf(s string) string {
	if _, t := splitName(s); t != "" {
		return t
	}
	return "latest"
}

// normalizeName writes a reference as "repo:tag" in docker's short form: without "docker.io/" (or
// index.docker.io/, registry-1.docker.io/), without "library/" for official images, tag "latest" when
// absent.
func normalizeName(s string) string {
	repo, tag := splitName(s)
	if tag == "" {
		tag = "latest"
	}
	for _, p := range []string{"docker.io/", "index.docker.io/", "registry-1.docker.io/"} {
		if r, ok := strings.CutPrefix(repo, p); ok {
			repo = r
			break
		}
	}
	if r, ok := strings.CutPrefix(repo, "library/"); ok && !strings.Contains(r, "/") {
		repo = r
	}
	return repo + ":" + tag
}

// stripRegistry drops a leading registry component ("localhost/", "127.0.0.1:5000/", "quay.io/").
func stripRegistry(s string) string {
	first, rest, ok := strings.Cut(s, "/")
	if ok && (strings.ContainsAny(first, ".:") || first == "localhost") {
		return rest
	}
	return s
}

// entryPlatform names an entry's platform for messages.
func entryPlatform(e *entry) string {
	if e.ref.Platform == nil {
		return "unknown"
	}
	return FormatPlatform(*e.ref.Platform)
}

// describeEntries lists entries for messages: names (or digest), digest, platform.
func describeEntries(es []*entry) string {
	const maxListed = 20
	var parts []string
	for i, e := range es {
		if i == maxListed {
			parts = append(parts, fmt.Sprintf("and %d more", len(es)-maxListed))
			break
		}
		id := e.ref.ManifestDigest
		if id == "" {
			id = e.config
		}
		s := fmt.Sprintf("%s %s", shortDigest(id), entryPlatform(e))
		if len(e.ref.Names) > 0 {
			s = strings.Join(e.ref.Names, ",") + " (" + s + ")"
		}
		parts = append(parts, s)
	}
	return strings.Join(parts, "; ")
}
