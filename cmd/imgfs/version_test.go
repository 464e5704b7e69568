package main

import (
	"runtime"
	"runtime/debug"
	"testing"
)

func TestBuildInfoOf(t *testing.T) {
	vcs := func(rev, tm, mod string) []debug.BuildSetting {
		return []debug.BuildSetting{{Key: "vcs", Value: "git"}, {Key: "vcs.revision", Value: rev}, {Key: "vcs.time", Value: tm}, {Key: "vcs.modified", Value: mod}}
	}
	plat := runtime.GOOS + "/" + runtime.GOARCH
	tests := []struct {
		name                 string
		bi                   *debug.BuildInfo
		linkVer, rev, modify string
		want                 string
	}{
		{"go install at a tag", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v1.2.3"}}, "dev", "", "",
			"v1.2.3 (no VCS revision in the build info), go1.26.8 " + plat},
		{"clone with vcs stamp", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "v0.0.0-20261204224000-abcdef012345"},
			Settings: vcs("abcdef0123456789", "2026-12-04T22:40:00Z", "false")}, "dev", "", "",
			"v0.0.0-20261204224000-abcdef012345 revision abcdef0123456789 of 2026-12-04T22:40:00Z, go1.26.8 " + plat},
		{"modified tree", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("abcdef", "2026-12-04T22:40:00Z", "true")}, "dev", "", "",
			"(devel) revision abcdef (modified) of 2026-12-04T22:40:00Z, go1.26.8 " + plat},
		{"worktree: linker fallback", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "dev", "1234abcd", "true",
			"(devel) revision 1234abcd (modified), go1.26.8 " + plat},
		{"stamp wins over linker fallback", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"},
			Settings: vcs("abcdef", "", "false")}, "dev", "1234abcd", "true",
			"(devel) revision abcdef, go1.26.8 " + plat},
		{"linker version", &debug.BuildInfo{GoVersion: "go1.26.8", Main: debug.Module{Version: "(devel)"}}, "v2.0.0", "", "",
			"v2.0.0 (no VCS revision in the build info), go1.26.8 " + plat},
		{"no build info", nil, "dev", "", "", "(devel) (no VCS revision in the build info), " + runtime.Version() + " " + plat},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			if got := buildInfoOf(tt.bi, tt.linkVer, tt.rev, tt.modify).String(); got != tt.want {
				t.Errorf("got  %q\nwant %q", got, tt.want)
			}
		})
	}
}
