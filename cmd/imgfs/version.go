package main

import (
	"fmt"
	"runtime"
	"runtime/debug"
	"strings"
)

// Set by the linker when the build info has no VCS stamp (a git worktree, -buildvcs=false): make build
// passes -X main.vcsRevision=... -X main.vcsModified=true|false from git.
var vcsRevision, vcsModified string

// buildInfo is what --version prints and what --json outputs name as imgfsVersion.
type buildInfo struct {
	Version   string `json:"version"`            // module version: v1.2.3 (go install ...@v1.2.3), a pseudo-version, or (devel)
	Revision  string `json:"revision,omitempty"` // VCS commit
	Time      string `json:"time,omitempty"`     // commit time
	Modified  bool   `json:"modified,omitempty"` // built from a tree with uncommitted changes
	GoVersion string `json:"goVersion"`
}

// readBuildInfo reads the running binary's build info.
func readBuildInfo() buildInfo {
	bi, _ := debug.ReadBuildInfo()
	return buildInfoOf(bi, version, vcsRevision, vcsModified)
}

// buildInfoOf derives buildInfo from the Go build info, the linker-set version (when not "dev") and
// the linker-set VCS fallbacks.
func buildInfoOf(bi *debug.BuildInfo, linkVersion, linkRev, linkModified string) buildInfo {
	out := buildInfo{Version: "(devel)", GoVersion: runtime.Version()}
	if bi != nil {
		if bi.Main.Version != "" {
			out.Version = bi.Main.Version
		}
		if bi.GoVersion != "" {
			out.GoVersion = bi.GoVersion
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				out.Revision = s.Value
			case "vcs.time":
				out.Time = s.Value
			case "vcs.modified":
				out.Modified = s.Value == "true"
			}
		}
	}
	if linkVersion != "" && linkVersion != "dev" {
		out.Version = linkVersion
	}
	if out.Revision == "" && linkRev != "" {
		out.Revision, out.Modified = linkRev, linkModified == "true"
	}
	return out
}

// String is the --version line (after "imgfs version ").
func (b buildInfo) String() string {
	var s strings.Builder
	s.WriteString(b.Version)
	if b.Revision != "" {
		fmt.Fprintf(&s, " revision %s", b.Revision)
		if b.Modified {
			s.WriteString(" (modified)")
		}
		if b.Time != "" {
			fmt.Fprintf(&s, " of %s", b.Time)
		}
	} else {
		s.WriteString(" (no VCS revision in the build info)")
	}
	fmt.Fprintf(&s, ", %s %s/%s", b.GoVersion, runtime.GOOS, runtime.GOARCH)
	return s.String()
}
