package imagewrite

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
)

// testConfig is the image config the change tests edit.
const testConfig = `{"architecture":"amd64","os":"linux","x":{"keep":true},
 "config":{"Env":["PATH=/usr/bin:/bin","HOME=/root","EMPTY="],"Cmd":["sh"],"Entrypoint":null,
  "Labels":{"old":"1"},"ExposedPorts":{"22/tcp":{}},"WorkingDir":"/srv","Unknown":[1,2]}}`

// applyLines parses and applies change lines to testConfig and returns its container config.
func applyLines(t *testing.T, lines ...string) (map[string]json.RawMessage, error) {
	t.Helper()
	var cs []Change
	for _, l := range lines {
		c, err := ParseChange(l)
		if err != nil {
			return nil, err
		}
		cs = append(cs, c)
	}
	raw, err := ApplyChanges([]byte(testConfig), cs...)
	if err != nil {
		return nil, err
	}
	var doc map[string]json.RawMessage
	if err := json.Unmarshal(raw, &doc); err != nil {
		t.Fatal(err)
	}
	if string(doc["x"]) != `{"keep":true}` {
		t.Errorf("unknown top-level field became %s", doc["x"])
	}
	var cc map[string]json.RawMessage
	if err := json.Unmarshal(doc["config"], &cc); err != nil {
		t.Fatal(err)
	}
	if string(cc["Unknown"]) != `[1,2]` {
		t.Errorf("unknown config field became %s", cc["Unknown"])
	}
	return cc, nil
}

func TestApplyChanges(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name  string
		lines []string
		field string
		want  string // JSON of the field; "" means absent
	}{
		{"cmd exec", []string{`CMD ["nginx", "-g", "daemon off;"]`}, "Cmd", `["nginx","-g","daemon off;"]`},
		{"cmd shell", []string{`CMD echo "$HOME" && ls`}, "Cmd", `["/bin/sh","-c","echo \"$HOME\" \u0026\u0026 ls"]`},
		{"cmd lower case", []string{`cmd ["a"]`}, "Cmd", `["a"]`},
		{"cmd bad json is shell", []string{`CMD [not json`}, "Cmd", `["/bin/sh","-c","[not json"]`},
		{"cmd empty array clears", []string{`CMD []`}, "Cmd", ``},
		{"entrypoint drops cmd", []string{`ENTRYPOINT ["/init"]`}, "Cmd", ``},
		{"entrypoint set", []string{`ENTRYPOINT ["/init"]`}, "Entrypoint", `["/init"]`},
		{"entrypoint keeps cmd given before", []string{`CMD ["x"]`, `ENTRYPOINT /init`}, "Cmd", `["x"]`},
		{"entrypoint keeps cmd given after", []string{`ENTRYPOINT /init`, `CMD ["y"]`}, "Cmd", `["y"]`},
		{"entrypoint shell", []string{`ENTRYPOINT exec /init`}, "Entrypoint", `["/bin/sh","-c","exec /init"]`},
		{"env new", []string{`ENV A=1`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=1"]`},
		{"env replace in place", []string{`ENV HOME=/home/me`}, "Env", `["PATH=/usr/bin:/bin","HOME=/home/me","EMPTY="]`},
		{"env several quoted", []string{`ENV A="two words" B='single $HOME' C=a\ b`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=two words","B=single $HOME","C=a b"]`},
		{"env expands", []string{`ENV PATH=/opt/bin:$PATH X=${HOME}/x`}, "Env", `["PATH=/opt/bin:/usr/bin:/bin","HOME=/root","EMPTY=","X=/root/x"]`},
		{"env expands quoted", []string{`ENV A="$HOME x" B="${NOPE:-d e}"`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=/root x","B=d e"]`},
		{"env expands from before", []string{`ENV HOME=/new Y=$HOME`}, "Env", `["PATH=/usr/bin:/bin","HOME=/new","EMPTY=","Y=/root"]`},
		{"env sequence", []string{`ENV HOME=/new`, `ENV Y=$HOME`}, "Env", `["PATH=/usr/bin:/bin","HOME=/new","EMPTY=","Y=/new"]`},
		{"env defaults", []string{`ENV A=${NOPE:-def} B=${EMPTY:-e} C=${EMPTY-e} D=${HOME:+set} E=${NOPE+set}`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=def","B=e","C=","D=set","E="]`},
		{"env nested default", []string{`ENV A=${NOPE:-${HOME}/d}`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=/root/d"]`},
		{"env legacy form", []string{`ENV GREETING hello   big world`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","GREETING=hello   big world"]`},
		{"env escaped dollar", []string{`ENV A=\$HOME B="\$HOME"`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A=$HOME","B=$HOME"]`},
		{"env empty value", []string{`ENV A=`}, "Env", `["PATH=/usr/bin:/bin","HOME=/root","EMPTY=","A="]`},
		{"label", []string{`LABEL a=b "com.example.key"="v 1" old=2`}, "Labels", `{"a":"b","com.example.key":"v 1","old":"2"}`},
		{"label legacy", []string{`LABEL maintainer Jane Doe`}, "Labels", `{"maintainer":"Jane Doe","old":"1"}`},
		{"expose", []string{`EXPOSE 80 443/udp 8000-8002/TCP`}, "ExposedPorts", `{"22/tcp":{},"443/udp":{},"80/tcp":{},"8000/tcp":{},"8001/tcp":{},"8002/tcp":{}}`},
		{"volume list", []string{`VOLUME /data /var/log`}, "Volumes", `{"/data":{},"/var/log":{}}`},
		{"volume json", []string{`VOLUME ["/data", "/with space"]`}, "Volumes", `{"/data":{},"/with space":{}}`},
		{"user", []string{`USER 1000:1000`}, "User", `"1000:1000"`},
		{"user expands", []string{`ENV U=app`, `USER $U`}, "User", `"app"`},
		{"workdir absolute", []string{`WORKDIR /app/`}, "WorkingDir", `"/app"`},
		{"workdir relative", []string{`WORKDIR sub/../x`}, "WorkingDir", `"/srv/x"`},
		{"workdir relative twice", []string{`WORKDIR a`, `WORKDIR b`}, "WorkingDir", `"/srv/a/b"`},
		{"stopsignal", []string{`STOPSIGNAL SIGQUIT`}, "StopSignal", `"SIGQUIT"`},
		{"stopsignal number", []string{`STOPSIGNAL 9`}, "StopSignal", `"9"`},
		{"onbuild", []string{`ONBUILD RUN echo hi`, `ONBUILD copy . /src`}, "OnBuild", `["RUN echo hi","copy . /src"]`},
		{"healthcheck none", []string{`HEALTHCHECK NONE`}, "Healthcheck", `{"Test":["NONE"]}`},
		{"healthcheck shell", []string{`HEALTHCHECK --interval=30s --timeout=3s --retries=2 CMD curl -f http://localhost/ || exit 1`}, "Healthcheck",
			`{"Test":["CMD-SHELL","curl -f http://localhost/ || exit 1"],"Interval":30000000000,"Timeout":3000000000,"Retries":2}`},
		{"healthcheck exec", []string{`HEALTHCHECK --start-period=1m --start-interval=5s CMD ["/check", "-q"]`}, "Healthcheck",
			`{"Test":["CMD","/check","-q"],"StartPeriod":60000000000,"StartInterval":5000000000}`},
		{"untouched", []string{`USER x`}, "Cmd", `["sh"]`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cc, err := applyLines(t, c.lines...)
			if err != nil {
				t.Fatal(err)
			}
			got, ok := cc[c.field]
			switch {
			case c.want == "" && ok && string(got) != "null":
				t.Errorf("%s = %s, want it absent", c.field, got)
			case c.want != "" && string(got) != c.want:
				t.Errorf("%s = %s\n want %s", c.field, got, c.want)
			}
		})
	}
}

func TestApplyChangesWindows(t *testing.T) {
	t.Parallel()
	c, err := ParseChange("CMD dir")
	if err != nil {
		t.Fatal(err)
	}
	raw, err := ApplyChanges([]byte(`{"os":"windows","config":null}`), c)
	if err != nil {
		t.Fatal(err)
	}
	if want := `{"config":{"Cmd":["cmd","/S","/C","dir"]},"os":"windows"}`; string(raw) != want {
		t.Errorf("got %s, want %s", raw, want)
	}
}

func TestParseChangeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ line, want string }{
		{"", "empty"},
		{"   ", "empty"},
		{"RUN apt-get update", `unknown instruction "RUN"`},
		{"FROM scratch", `unknown instruction "FROM"`},
		{"CMD", "needs an argument"},
		{"ENV", "needs an argument"},
		{"ENV A", "want NAME=VALUE"},
		{"ENV A=1 B", "no = in"},
		{"ENV =1", "empty name"},
		{`ENV A="open`, "unterminated"},
		{"ENV A=${", "missing }"},
		{"ENV A=${B:*x}", "unsupported substitution"},
		{"ENV A=${1}", "bad substitution"},
		{"LABEL =x", "empty name"},
		{"EXPOSE 0", "1 to 65535"},
		{"EXPOSE 70000", "1 to 65535"},
		{"EXPOSE 90-80", "1 to 65535"},
		{"EXPOSE 80/icmp", "tcp, udp or sctp"},
		{"EXPOSE eighty", "want PORT"},
		{"STOPSIGNAL SIG TERM", "invalid signal"},
		{"VOLUME []", "needs a path"},
		{`VOLUME [""]`, "empty path"},
		{"ONBUILD ONBUILD RUN x", "chaining"},
		{"ONBUILD FROM x", "not allowed"},
		{"ONBUILD BOGUS x", "unknown ONBUILD instruction"},
		{"HEALTHCHECK NONE x", "no arguments"},
		{"HEALTHCHECK --interval=1us CMD x", "at least 1ms"},
		{"HEALTHCHECK --interval=soon CMD x", "duration"},
		{"HEALTHCHECK --retries=-1 CMD x", "at least 0"},
		{"HEALTHCHECK --bogus=1 CMD x", "unknown HEALTHCHECK flag"},
		{"HEALTHCHECK --interval CMD x", "want --interval=VALUE"},
		{"HEALTHCHECK --timeout=1s --timeout=2s CMD x", "twice"},
		{"HEALTHCHECK CMD", "needs a command"},
		{"HEALTHCHECK CMD []", "needs a command"},
		{"HEALTHCHECK curl x", "want NONE or [flags] CMD"},
		{strings.Repeat("x", maxChange+1), "longer than"},
	}
	for _, c := range cases {
		_, err := ParseChange(c.line)
		if err == nil || !errors.Is(err, ErrChange) || !strings.Contains(err.Error(), c.want) {
			t.Errorf("ParseChange(%.40q) = %v, want an ErrChange containing %q", c.line, err, c.want)
		}
	}
}

func TestApplyChangeErrors(t *testing.T) {
	t.Parallel()
	cases := []struct{ line, want string }{
		{"ENV A=${NOPE:?must be set}", "NOPE: must be set"},
		{"ENV A=${EMPTY?}", ""}, // set (if empty): no error
		{"ENV P=9$HOME", ""},
		{"EXPOSE $NOPE", "needs a port"},
		{"USER $NOPE", "empty user"},
		{"STOPSIGNAL $HOME", "invalid signal"},
	}
	for _, c := range cases {
		_, err := applyLines(t, c.line)
		switch {
		case c.want == "" && err != nil:
			t.Errorf("%q: %v", c.line, err)
		case c.want != "" && (err == nil || !strings.Contains(err.Error(), c.want)):
			t.Errorf("%q: error %v, want one containing %q", c.line, err, c.want)
		}
	}
}

// FuzzParseChange checks that no line makes ParseChange or ApplyChanges panic, and that what applies
// gives valid JSON.
func FuzzParseChange(f *testing.F) {
	for _, s := range []string{
		`CMD ["a","b"]`, `CMD echo hi`, `ENTRYPOINT ["/init"]`, `ENV A=1 B="x y" C='z'`, `ENV K v w`,
		`ENV A=${B:-${C:+d}}`, `LABEL "a"=b`, `EXPOSE 80 90-91/udp`, `VOLUME ["/a"]`, `VOLUME /b /c`,
		`USER u:g`, `WORKDIR rel`, `STOPSIGNAL SIGRTMIN+3`, `ONBUILD RUN x`, `HEALTHCHECK NONE`,
		`HEALTHCHECK --interval=5s --retries=3 CMD ["x"]`, `ENV A=\`, `ENV A="\"$`, `ENV A=${`, "env\tA=1",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, line string) {
		c, err := ParseChange(line)
		if err != nil {
			if !errors.Is(err, ErrChange) {
				t.Fatalf("error %v is not an ErrChange", err)
			}
			return
		}
		raw, err := ApplyChanges([]byte(testConfig), c)
		if err != nil {
			if !errors.Is(err, ErrChange) {
				t.Fatalf("apply error %v is not an ErrChange", err)
			}
			return
		}
		if !json.Valid(raw) {
			t.Fatalf("invalid JSON: %s", raw)
		}
	})
}
