package integration

import (
	"bufio"
	"bytes"
	"context"
	"io"
	"math/rand/v2"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// Commit of a live mount: the pause, what it must refuse, and what ends it (issue 9, defects 1–3, 6).

// runGuarded runs imgfs with a hang guard (a deadlock fails the test instead of hanging it) and returns
// its stderr and exit code.
func runGuarded(t *testing.T, stderr io.Writer, args ...string) (string, int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, imgfsBin, args...)
	var buf bytes.Buffer
	cmd.Stderr = &buf
	if stderr != nil {
		cmd.Stderr = stderr
	}
	err := cmd.Run()
	if ctx.Err() != nil {
		t.Fatalf("imgfs %s hung (killed after 2 minutes)", strings.Join(args, " "))
	}
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		t.Fatal(err)
	}
	return buf.String(), code
}

// writeGuarded writes a file, failing the test when the write is still blocked after a minute.
func writeGuarded(t *testing.T, path string, data []byte) {
	t.Helper()
	done := make(chan error, 1)
	go func() { done <- os.WriteFile(path, data, 0o644) }()
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(time.Minute):
		t.Fatalf("writing %s: still blocked after a minute (the mount stays paused)", path)
	}
}

func TestCommitIntoLiveMountRefused(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	writeGuarded(t, filepath.Join(mnt, "new.txt"), []byte("new\n"))
	link := filepath.Join(dir, "link")
	if err := os.Symlink(mnt, link); err != nil {
		t.Fatal(err)
	}
	uplink := filepath.Join(dir, "uplink")
	if err := os.Symlink(filepath.Join(upper, "newdir"), uplink); err != nil {
		t.Fatal(err)
	}
	if err := os.Mkdir(filepath.Join(mnt, "newdir"), 0o755); err != nil {
		t.Fatal(err)
	}
	commit := []string{"commit", "-q", "--cache-dir", cacheDir, "--upper", upper}
	for _, tc := range []struct{ name, out string }{
		{"output in the mount", filepath.Join(mnt, "out.tar")},
		{"output in a directory still to be made in the mount", filepath.Join(mnt, "a", "b", "out.tar")},
		{"output through a symlink into the mount", filepath.Join(link, "out.tar")},
		{"output in the upper directory", filepath.Join(upper, "out.tar")},
		{"output in the upper directory through a symlink", filepath.Join(uplink, "x", "out.tar")},
	} {
		t.Run(tc.name, func(t *testing.T) {
			stderr, code := runGuarded(t, nil, append(commit, "-o", tc.out, archive)...)
			want := "lies in the live mount " + mnt
			if strings.HasPrefix(tc.out, upper) || strings.HasPrefix(tc.out, uplink) {
				want = "lies in the upper directory " + upper
			}
			if code == 0 || !strings.Contains(stderr, want) {
				t.Errorf("exit %d, stderr %q; want a refusal naming the mount", code, stderr)
			}
		})
	}
	t.Run("index cache in the mount", func(t *testing.T) {
		stderr, code := runGuarded(t, nil, "commit", "-q", "--cache-dir", filepath.Join(mnt, "cache"), "--upper", upper,
			"-o", filepath.Join(dir, "out.tar"), archive)
		if code == 0 || !strings.Contains(stderr, "index cache") || !strings.Contains(stderr, "lies in the live mount") {
			t.Errorf("exit %d, stderr %q; want a refusal naming the index cache", code, stderr)
		}
	})
	t.Run("stderr a file in the mount", func(t *testing.T) {
		f, err := os.Create(filepath.Join(mnt, "commit.log"))
		if err != nil {
			t.Fatal(err)
		}
		_, code := runGuarded(t, f, append(commit, "-o", filepath.Join(dir, "out.tar"), archive)...)
		f.Close()
		msg, _ := os.ReadFile(filepath.Join(mnt, "commit.log"))
		if code == 0 || !strings.Contains(string(msg), "standard error is a file in the live mount") {
			t.Errorf("exit %d, stderr %q; want a refusal", code, msg)
		}
	})
	// Nothing was paused for good, nothing written into the mount; a commit outside it works.
	writeGuarded(t, filepath.Join(mnt, "after.txt"), []byte("after\n"))
	if _, err := os.Lstat(filepath.Join(mnt, "out.tar")); err == nil {
		t.Error("out.tar appeared in the mount")
	}
	ents, _ := os.ReadDir(upper)
	for _, e := range ents {
		if strings.Contains(e.Name(), "out.tar") {
			t.Errorf("a refused commit left %s in the upper directory", e.Name())
		}
	}
	if stderr, code := runGuarded(t, nil, append(commit, "-o", filepath.Join(dir, "ok.tar"), archive)...); code != 0 {
		t.Errorf("commit outside the mount: exit %d: %s", code, stderr)
	}
}

// startPausedCommit mounts the sample writable, writes enough incompressible data that a commit takes
// a while, and starts a commit of the live mount; it returns once the commit has paused the mount.
func startPausedCommit(t *testing.T, seed uint64) (mnt, out string, cmd *exec.Cmd, stderr io.Reader) {
	t.Helper()
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt = mountImage(t, archive, "--upper", upper)
	// Enough incompressible data that the commit is still reading it when it is killed.
	big := make([]byte, 192<<20)
	r := rand.New(rand.NewPCG(1, seed))
	for i := 0; i+8 <= len(big); i += 8 {
		v := r.Uint64()
		for j := range 8 {
			big[i+j] = byte(v >> (8 * j))
		}
	}
	writeGuarded(t, filepath.Join(mnt, "big.bin"), big)
	big = nil

	out = filepath.Join(dir, "out", "out.tar")
	os.Mkdir(filepath.Dir(out), 0o755)
	cmd = exec.Command(imgfsBin, "commit", "-v", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(stderr)
	paused := false
	for sc.Scan() {
		if strings.Contains(sc.Text(), "paused the live mount") {
			paused = true
			break
		}
	}
	if !paused {
		cmd.Wait()
		t.Fatal("commit never paused the mount")
	}
	return mnt, out, cmd, stderr
}

// TestKilledCommitReleasesPause kills a commit while it holds the mount paused: writers go on, and the
// mount unmounts.
func TestKilledCommitReleasesPause(t *testing.T) {
	requireFUSE(t)
	for _, sig := range []syscall.Signal{syscall.SIGKILL, syscall.SIGTERM, syscall.SIGINT} {
		t.Run(sig.String(), func(t *testing.T) {
			mnt, out, cmd, stderr := startPausedCommit(t, uint64(sig))
			// A writer that comes during the pause waits for it.
			during := make(chan error, 1)
			go func() { during <- os.WriteFile(filepath.Join(mnt, "during.txt"), []byte("during\n"), 0o644) }()
			cmd.Process.Signal(sig)
			go io.Copy(io.Discard, stderr)
			err := cmd.Wait()
			ws := cmd.ProcessState.Sys().(syscall.WaitStatus)
			switch {
			case sig == syscall.SIGKILL && !(ws.Signaled() && ws.Signal() == syscall.SIGKILL):
				t.Fatalf("commit ended before it was killed (%v): make big.bin bigger", err)
			case sig != syscall.SIGKILL && (ws.Signaled() || ws.ExitStatus() == 0):
				t.Fatalf("commit on %v: %v, want a clean exit with an error", sig, err)
			}
			select {
			case err := <-during:
				if err != nil {
					t.Fatal(err)
				}
			case <-time.After(time.Minute):
				t.Fatal("a writer is still blocked a minute after the commit was killed")
			}
			writeGuarded(t, filepath.Join(mnt, "after.txt"), []byte("after\n"))
			if sig != syscall.SIGKILL {
				ents, _ := os.ReadDir(filepath.Dir(out))
				for _, e := range ents {
					t.Errorf("the interrupted commit left %s", e.Name())
				}
			}
		})
	}
}

// TestWriterKillableDuringPause: a process whose write waits for a commit's pause can still be killed
// (the mount answers the kernel's INTERRUPT), and is gone while the pause goes on, instead of hanging
// unkillable, holding its files, until the commit ends.
func TestWriterKillableDuringPause(t *testing.T) {
	requireFUSE(t)
	mnt, _, cmd, stderr := startPausedCommit(t, 7)
	go io.Copy(io.Discard, stderr)
	commitDone := make(chan struct{})
	go func() { cmd.Wait(); close(commitDone) }()
	writer := exec.Command("sh", "-c", "echo blocked > "+filepath.Join(mnt, "blocked.txt")+"; echo unblocked")
	var wout bytes.Buffer
	writer.Stdout = &wout
	if err := writer.Start(); err != nil {
		t.Fatal(err)
	}
	// Kill it once it waits for the mount's answer, and keeps waiting (not a quick LOOKUP on the way).
	deadline := time.Now().Add(time.Minute)
	for seen := 0; seen < 10; time.Sleep(20 * time.Millisecond) {
		wchan, _ := os.ReadFile("/proc/" + strconv.Itoa(writer.Process.Pid) + "/wchan")
		if w := string(wchan); strings.Contains(w, "request_wait_answer") || strings.Contains(w, "fuse") {
			seen++
		} else {
			seen = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the writer never waited for the mount (wchan %q)", wchan)
		}
	}
	writer.Process.Kill()
	writerDone := make(chan struct{})
	go func() { writer.Wait(); close(writerDone) }()
	select {
	case <-writerDone:
	case <-commitDone:
		<-writerDone
		t.Fatal("the killed writer ended only when the commit ended its pause")
	}
	select {
	case <-commitDone:
		t.Fatal("the commit ended before the writer was killed: make big.bin bigger")
	default:
	}
	if strings.Contains(wout.String(), "unblocked") {
		t.Error("the writer was not blocked by the pause")
	}
	<-commitDone
	writeGuarded(t, filepath.Join(mnt, "after.txt"), []byte("after\n"))
}

// TestSecondMountOfUpperRefused: one writable mount per upper directory, whatever path names it, also
// when two start at the same instant; a commit through an alias finds and pauses the real mount.
func TestSecondMountOfUpperRefused(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	writeGuarded(t, filepath.Join(mnt, "new.txt"), []byte("new\n"))

	bind := filepath.Join(dir, "bind")
	os.Mkdir(bind, 0o755)
	if err := unix.Mount(upper, bind, "", unix.MS_BIND, ""); err != nil {
		t.Fatalf("bind mount: %v", err)
	}
	t.Cleanup(func() { unix.Unmount(bind, unix.MNT_DETACH) })
	symlink := filepath.Join(dir, "symlink")
	if err := os.Symlink(upper, symlink); err != nil {
		t.Fatal(err)
	}
	for _, alias := range []string{bind, symlink, upper + "/."} {
		mnt2 := t.TempDir()
		stderr, code := runGuarded(t, nil, "mount", "-q", "--cache-dir", cacheDir, "--upper", alias, archive, mnt2)
		if code == 0 {
			unmountOrDie(t, mnt2)
			t.Errorf("a second writable mount of %s through %s was allowed", upper, alias)
		} else if !strings.Contains(stderr, "in use by another mount") {
			t.Errorf("second mount through %s: exit %d: %q", alias, code, stderr)
		}
	}

	// A commit through the bind mount finds the live mount (it refuses an output in it, naming it) and
	// pauses it (it captures what was written through it).
	stderr, code := runGuarded(t, nil, "commit", "-q", "--cache-dir", cacheDir, "--upper", bind, "-o", filepath.Join(mnt, "x.tar"), archive)
	if code == 0 || !strings.Contains(stderr, "lies in the live mount "+mnt) {
		t.Errorf("commit through the alias into the mount: exit %d: %q", code, stderr)
	}
	out := filepath.Join(dir, "alias.tar")
	stderr, code = runGuarded(t, nil, "commit", "-v", "--cache-dir", cacheDir, "--upper", bind, "-o", out, archive)
	if code != 0 || !strings.Contains(stderr, "paused the live mount") {
		t.Errorf("commit through the alias: exit %d, did not pause the mount: %q", code, stderr)
	}
	if b, err := os.ReadFile(filepath.Join(mountImage(t, out), "new.txt")); err != nil || string(b) != "new\n" {
		t.Errorf("commit through the alias: new.txt = %q, %v", b, err)
	}

	// Two mounts started at the same instant: exactly one gets the directory.
	for try := range 10 {
		up := filepath.Join(t.TempDir(), "upper")
		mnts := []string{t.TempDir(), t.TempDir()}
		codes := make([]int, 2)
		stderrs := make([]string, 2)
		var wg sync.WaitGroup
		for i := range 2 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				stderrs[i], codes[i] = runGuarded(t, nil, "mount", "-q", "--cache-dir", cacheDir, "--upper", up, archive, mnts[i])
			}()
		}
		wg.Wait()
		ok := 0
		for i := range 2 {
			if codes[i] == 0 {
				ok++
				unmountOrDie(t, mnts[i])
			} else if !strings.Contains(stderrs[i], "in use by another mount") {
				t.Errorf("try %d: mount failed for another reason: %s", try, stderrs[i])
			}
		}
		if ok != 1 {
			t.Errorf("try %d: %d of two simultaneous mounts of one upper directory succeeded, want 1", try, ok)
		}
	}
}

// mmapHelperEnv makes the test binary a helper process that writes through a shared mapping of the
// file the variable names, says "ready" and keeps the mapping until its stdin closes. A separate process,
// because fork() of the process holding the mapping writes its dirty pages back.
const mmapHelperEnv = "IMGFS_TEST_MMAP_WRITE"

var mmapWant = []byte("written through a shared mapping")

func init() {
	path := os.Getenv(mmapHelperEnv)
	if path == "" {
		return
	}
	f, err := os.OpenFile(path, os.O_RDWR, 0)
	if err == nil {
		var m []byte
		if m, err = unix.Mmap(int(f.Fd()), 0, 64<<10, unix.PROT_READ|unix.PROT_WRITE, unix.MAP_SHARED); err == nil {
			copy(m[4096:], mmapWant)
			os.Stdout.WriteString("ready\n")
			io.Copy(io.Discard, os.Stdin)
			os.Exit(0)
		}
	}
	os.Stderr.WriteString(err.Error() + "\n")
	os.Exit(1)
}

// TestCommitCapturesSharedMmap: bytes written through a MAP_SHARED mapping, not msync'ed and not yet
// written back, are in the commit of the live mount, as they would be with kernel overlayfs.
func TestCommitCapturesSharedMmap(t *testing.T) {
	requireFUSE(t)
	dir, archive := writeSample(t, "sample.tar")
	upper := filepath.Join(dir, "upper")
	mnt := mountImage(t, archive, "--upper", upper)
	path := filepath.Join(mnt, "mapped.bin")
	writeGuarded(t, path, make([]byte, 64<<10))
	helper := exec.Command(os.Args[0])
	helper.Env = append(os.Environ(), mmapHelperEnv+"="+path)
	stdin, err := helper.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := helper.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	helper.Stderr = os.Stderr
	if err := helper.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { stdin.Close(); helper.Wait() }()
	if line, _ := bufio.NewReader(stdout).ReadString('\n'); line != "ready\n" {
		t.Fatalf("mmap helper: %q", line)
	}
	// Readers of the mount see the bytes at once; the file in the upper directory does not have them
	// until the kernel writes the page back (30 s later by default).
	b, err := os.ReadFile(filepath.Join(upper, "mapped.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Equal(b[4096:4096+len(mmapWant)], mmapWant) {
		t.Log("the page was already written back: this run does not test the flush")
	}
	out := filepath.Join(dir, "mmap.tar")
	if stderr, code := runGuarded(t, nil, "commit", "-q", "--cache-dir", cacheDir, "--upper", upper, "-o", out, archive); code != 0 {
		t.Fatalf("commit: exit %d: %s", code, stderr)
	}
	b, err = os.ReadFile(filepath.Join(mountImage(t, out), "mapped.bin"))
	if err != nil {
		t.Fatal(err)
	}
	if len(b) != 64<<10 || !bytes.Equal(b[4096:4096+len(mmapWant)], mmapWant) {
		t.Errorf("the committed mapped.bin lacks the bytes written through the mapping (%d bytes, at 4096: %q)", len(b), b[4096:4096+len(mmapWant)])
	}
}

// TestNonRootControlSockets: two users each get a working writable mount and commit (their control
// sockets live in private per-user directories), and a directory pre-made by another user is refused.
func TestNonRootControlSockets(t *testing.T) {
	requireFUSE(t)
	var users []*user.User
	for _, name := range []string{"nobody", "daemon"} {
		u, err := user.Lookup(name)
		if err != nil {
			t.Fatalf("user %s: %v", name, err)
		}
		users = append(users, u)
	}
	// fusermount needs /dev/fuse open to all, as Debian's udev rule makes it; some containers make it 0600.
	if st, err := os.Stat("/dev/fuse"); err == nil && st.Mode().Perm()&0o006 != 0o006 {
		if err := os.Chmod("/dev/fuse", 0o666); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { os.Chmod("/dev/fuse", st.Mode().Perm()) })
	}
	// A shared TMPDIR as /tmp is, with the binary and the archive readable by all.
	base, err := os.MkdirTemp("", "imgfs-users-")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(base) })
	os.Chmod(base, 0o1777)
	bin := filepath.Join(base, "imgfs-bin")
	data, err := os.ReadFile(imgfsBin)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(bin, data, 0o755); err != nil {
		t.Fatal(err)
	}
	_, archive := writeSample(t, "sample.tar")
	shared := filepath.Join(base, "sample.tar")
	if b, err := os.ReadFile(archive); err != nil || os.WriteFile(shared, b, 0o644) != nil {
		t.Fatal("copying the sample")
	}

	as := func(u *user.User, args ...string) (string, int) {
		t.Helper()
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		home := filepath.Join(base, u.Username)
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
		defer cancel()
		cmd := exec.CommandContext(ctx, args[0], args[1:]...)
		cmd.Dir = home
		cmd.Env = []string{"PATH=/usr/bin:/bin:/usr/sbin:/sbin", "HOME=" + home, "TMPDIR=" + base}
		cmd.SysProcAttr = &syscall.SysProcAttr{Credential: &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid)}}
		out, err := cmd.CombinedOutput()
		if ctx.Err() != nil {
			t.Fatalf("%s as %s hung", strings.Join(args, " "), u.Username)
		}
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		} else if err != nil {
			t.Fatal(err)
		}
		return string(out), code
	}
	for _, u := range users {
		home := filepath.Join(base, u.Username)
		uid, _ := strconv.Atoi(u.Uid)
		gid, _ := strconv.Atoi(u.Gid)
		for _, d := range []string{home, filepath.Join(home, "mnt")} {
			if err := os.Mkdir(d, 0o755); err != nil {
				t.Fatal(err)
			}
			os.Chown(d, uid, gid)
		}
	}
	// Both users mount, write and commit; the mounts are live at the same time.
	for _, u := range users {
		home := filepath.Join(base, u.Username)
		out, code := as(u, bin, "mount", "-q", "--cache-dir", "cache", "--upper", "upper", shared, "mnt")
		if code != 0 {
			t.Fatalf("writable mount as %s: exit %d: %s", u.Username, code, out)
		}
		t.Cleanup(func() {
			if !isMountpoint(filepath.Join(home, "mnt")) {
				return
			}
			if out, code := as(u, bin, "unmount", "mnt"); code != 0 {
				unix.Unmount(filepath.Join(home, "mnt"), unix.MNT_DETACH)
				t.Errorf("unmount as %s: %s", u.Username, out)
			}
		})
		if out, code := as(u, "sh", "-c", "echo "+u.Username+" > mnt/who"); code != 0 {
			t.Fatalf("write as %s: %s", u.Username, out)
		}
	}
	for _, u := range users {
		out, code := as(u, bin, "commit", "-v", "--cache-dir", "cache", "--upper", "upper", "-o", "out.tar", shared)
		if code != 0 || !strings.Contains(out, "paused the live mount") {
			t.Errorf("commit as %s: exit %d, did not pause its mount: %s", u.Username, code, out)
		}
		sock := filepath.Join(base, "imgfs-"+u.Uid)
		var st unix.Stat_t
		if err := unix.Lstat(sock, &st); err != nil || strconv.Itoa(int(st.Uid)) != u.Uid || st.Mode&0o777 != 0o700 {
			t.Errorf("socket directory %s: %v, uid %d mode %o; want the user's own, 0700", sock, err, st.Uid, st.Mode&0o777)
		}
	}

	// A socket directory that another user made first is refused, naming the problem.
	victim := users[1]
	hostile := filepath.Join(base, "imgfs-"+victim.Uid)
	as(victim, bin, "unmount", filepath.Join(base, victim.Username, "mnt"))
	if err := os.RemoveAll(hostile); err != nil {
		t.Fatal(err)
	}
	if out, code := as(users[0], "mkdir", "-m", "0700", hostile); code != 0 {
		t.Fatalf("mkdir as %s: %s", users[0].Username, out)
	}
	out, code := as(victim, bin, "mount", "-q", "--cache-dir", "cache", "--upper", "upper", shared, "mnt")
	if code == 0 {
		t.Fatalf("mount as %s used the socket directory %s made by %s", victim.Username, hostile, users[0].Username)
	}
	if !strings.Contains(out, hostile) || !strings.Contains(out, "owned by uid "+users[0].Uid) {
		t.Errorf("mount with a hostile socket directory: %s", out)
	}
}
