package custody

import (
	"bufio"
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"os/user"
	"path/filepath"
	"strconv"
	"time"

	"golang.org/x/sys/unix"
)

// Record is one evidence action. Append fills Seq, Prev and Sum, and Time, User, Host, PID and Command
// when they are empty.
type Record struct {
	Seq     int64          `json:"seq"`
	Time    time.Time      `json:"time"`
	User    string         `json:"user"`
	Host    string         `json:"host"`
	PID     int            `json:"pid"`
	Command []string       `json:"command"`
	Action  string         `json:"action"`
	Archive *Archive       `json:"archive,omitempty"`
	Result  string         `json:"result"` // ResultOK, or ResultError with Error set
	Error   string         `json:"error,omitempty"`
	Details map[string]any `json:"details,omitempty"`
	Prev    string         `json:"prev"`
	Sum     string         `json:"sum"`
}

// Results of an action.
const (
	ResultOK    = "ok"
	ResultError = "error"
)

// MaxLine bounds one record's line (a longer line is refused by Append and reported by Verify).
const MaxLine = 1 << 20

// sumSuffix is how a line ends: `,"sum":"` + 64 hex digits + `"}`.
const (
	sumOpen   = `,"sum":"`
	sumSuffix = len(sumOpen) + 64 + len(`"}`)
)

// ErrBadRecord is wrapped by every error of Verify and Parse that names a bad record.
var ErrBadRecord = errors.New("custody: bad record")

// BadRecordError names the first record of a log that breaks the chain: its line number (from 1) and
// what is wrong with it.
type BadRecordError struct {
	Line   int
	Reason string
}

func (e *BadRecordError) Error() string { return fmt.Sprintf("record %d: %s", e.Line, e.Reason) }
func (e *BadRecordError) Unwrap() error { return ErrBadRecord }

// Report is what Verify found in a log whose chain holds.
type Report struct {
	Records int    // how many records
	Head    string // sha256 (hex) of the last line, "" for an empty log: write it down to pin the log's end
}

// lineHash is the chain hash of a line (without its newline).
func lineHash(line []byte) string {
	s := sha256.Sum256(line)
	return hex.EncodeToString(s[:])
}

// seal returns the record's line (without a newline) with Sum set.
func seal(r *Record) ([]byte, error) {
	r.Sum = ""
	b, err := json.Marshal(r)
	if err != nil {
		return nil, err
	}
	// b ends with `,"sum":""}`; the sum covers everything before `,"sum":"` and a closing brace.
	body, ok := bytes.CutSuffix(b, []byte(`,"sum":""}`))
	if !ok {
		return nil, errors.New("custody: record does not end with its sum field")
	}
	r.Sum = bodySum(body)
	return fmt.Appendf(body, `%s%s"}`, sumOpen, r.Sum), nil
}

func bodySum(body []byte) string {
	h := sha256.New()
	h.Write(body)
	h.Write([]byte("}"))
	return hex.EncodeToString(h.Sum(nil))
}

// Parse reads one line of a log (without its newline) and checks the record on its own: the JSON
// fields (no unknown ones), its sum, and what a record must hold. It does not check the chain.
func Parse(line []byte) (Record, error) {
	var r Record
	if len(line) > MaxLine {
		return r, fmt.Errorf("%w: line of %d bytes, more than %d", ErrBadRecord, len(line), MaxLine)
	}
	if len(line) < sumSuffix || !bytes.HasPrefix(line[len(line)-sumSuffix:], []byte(sumOpen)) {
		return r, fmt.Errorf("%w: the line does not end with its sum", ErrBadRecord)
	}
	dec := json.NewDecoder(bytes.NewReader(line))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&r); err != nil {
		return r, fmt.Errorf("%w: %v", ErrBadRecord, err)
	}
	if dec.More() {
		return r, fmt.Errorf("%w: data after the record", ErrBadRecord)
	}
	if got := bodySum(line[:len(line)-sumSuffix]); got != r.Sum {
		return r, fmt.Errorf("%w: its sum is %s but the line hashes to %s: the record was edited", ErrBadRecord, r.Sum, got)
	}
	switch {
	case r.Seq < 1:
		return r, fmt.Errorf("%w: seq %d", ErrBadRecord, r.Seq)
	case r.Action == "":
		return r, fmt.Errorf("%w: no action", ErrBadRecord)
	case r.Time.IsZero():
		return r, fmt.Errorf("%w: no time", ErrBadRecord)
	case r.Result != ResultOK && r.Result != ResultError:
		return r, fmt.Errorf("%w: result %q", ErrBadRecord, r.Result)
	case r.Prev != "" && !isHex64(r.Prev):
		return r, fmt.Errorf("%w: prev %q is not a sha256", ErrBadRecord, r.Prev)
	case r.Seq == 1 && r.Prev != "", r.Seq > 1 && r.Prev == "":
		return r, fmt.Errorf("%w: seq %d with prev %q", ErrBadRecord, r.Seq, r.Prev)
	}
	return r, nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for _, c := range []byte(s) {
		if !('0' <= c && c <= '9' || 'a' <= c && c <= 'f') {
			return false
		}
	}
	return true
}

// Verify reads the log at path and checks every record and the chain: each record parses and matches
// its sum, seq counts 1, 2, 3..., each prev is the hash of the line before, and the last line ends with
// a newline. An error of type *BadRecordError names the first bad record; other errors are I/O errors.
func Verify(path string) (Report, error) {
	f, err := os.Open(path)
	if err != nil {
		return Report{}, fmt.Errorf("custody log %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	rep, err := VerifyReader(f)
	if err != nil {
		return rep, fmt.Errorf("custody log %s: %w", path, err)
	}
	return rep, nil
}

// VerifyReader is Verify of a log read from r.
func VerifyReader(r io.Reader) (Report, error) {
	br := bufio.NewReaderSize(r, 64<<10)
	var rep Report
	prev := ""
	for n := 1; ; n++ {
		line, err := readLine(br)
		if err == io.EOF && line == nil {
			return rep, nil
		}
		if err != nil && err != io.EOF {
			if errors.Is(err, errLongLine) {
				return rep, &BadRecordError{Line: n, Reason: err.Error()}
			}
			return rep, err
		}
		if err == io.EOF {
			return rep, &BadRecordError{Line: n, Reason: "truncated: the last line has no newline (a record cut short)"}
		}
		rec, perr := Parse(line)
		if perr != nil {
			return rep, &BadRecordError{Line: n, Reason: trimKind(perr)}
		}
		switch {
		case rec.Seq != int64(n):
			return rep, &BadRecordError{Line: n, Reason: fmt.Sprintf("seq %d where %d was due: %s", rec.Seq, n, seqWhy(rec.Seq, int64(n)))}
		case rec.Prev != prev:
			return rep, &BadRecordError{Line: n, Reason: fmt.Sprintf("prev is %s but the record before hashes to %s: the record before was edited or replaced", rec.Prev, prev)}
		}
		prev = lineHash(line)
		rep.Records, rep.Head = n, prev
	}
}

func seqWhy(got, want int64) string {
	switch {
	case got > want:
		return "a record before it was removed, or records were reordered"
	default:
		return "records were reordered or copied"
	}
}

func trimKind(err error) string {
	s := err.Error()
	if p := ErrBadRecord.Error() + ": "; len(s) > len(p) && s[:len(p)] == p {
		return s[len(p):]
	}
	return s
}

var errLongLine = fmt.Errorf("line longer than %d bytes", MaxLine)

// readLine returns the next line without its newline; io.EOF with a non-nil line means the line had no
// newline.
func readLine(br *bufio.Reader) ([]byte, error) {
	var line []byte
	for {
		part, err := br.ReadSlice('\n')
		line = append(line, part...)
		if len(line) > MaxLine+1 {
			return nil, errLongLine
		}
		switch {
		case err == nil:
			return line[:len(line)-1], nil
		case errors.Is(err, bufio.ErrBufferFull):
			continue
		case err == io.EOF && len(line) == 0:
			return nil, io.EOF
		default:
			return line, err
		}
	}
}

// Append adds rec to the log at path (created, mode 0644, when missing) under an exclusive flock:
// it reads the last record for its seq and hash, writes the new line with one write in O_APPEND mode
// and syncs the file (and, for a new log, its directory). It refuses to extend a log whose last line is
// not a whole, valid record. rec is updated with what Append filled in.
func Append(path string, rec *Record) error {
	if err := fill(rec); err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	_, statErr := os.Lstat(path)
	created := errors.Is(statErr, os.ErrNotExist)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_APPEND|os.O_CREATE|unix.O_NOFOLLOW|unix.O_CLOEXEC, 0o644)
	if err != nil {
		return fmt.Errorf("custody log %s: %w", path, errors.Unwrap(err))
	}
	defer f.Close()
	if err := flock(f); err != nil {
		return fmt.Errorf("custody log %s: locking: %w", path, err)
	}
	st, err := f.Stat()
	if err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	if !st.Mode().IsRegular() {
		return fmt.Errorf("custody log %s: not a regular file", path)
	}
	last, n, err := lastLine(f, st.Size())
	if err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	rec.Seq, rec.Prev = 1, ""
	if last != nil {
		prev, err := Parse(last)
		if err != nil {
			return fmt.Errorf("custody log %s: its last record (line %d) is damaged, so nothing is appended: %w", path, n, err)
		}
		rec.Seq, rec.Prev = prev.Seq+1, lineHash(last)
	}
	line, err := seal(rec)
	if err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	if len(line) > MaxLine {
		return fmt.Errorf("custody log %s: record of %d bytes, more than %d", path, len(line), MaxLine)
	}
	if _, err := f.Write(append(line, '\n')); err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("custody log %s: %w", path, err)
	}
	if created {
		if d, err := os.Open(filepath.Dir(path)); err == nil {
			d.Sync()
			d.Close()
		}
	}
	return nil
}

func flock(f *os.File) error {
	for {
		err := unix.Flock(int(f.Fd()), unix.LOCK_EX)
		if !errors.Is(err, unix.EINTR) {
			return err
		}
	}
}

// lastLine returns the last line of f (size bytes) without its newline, and its line number; nil for an
// empty file. A file that does not end with a newline is refused.
func lastLine(f *os.File, size int64) ([]byte, int, error) {
	if size == 0 {
		return nil, 0, nil
	}
	var end [1]byte
	if _, err := f.ReadAt(end[:], size-1); err != nil {
		return nil, 0, err
	}
	if end[0] != '\n' {
		return nil, 0, errors.New("the last line has no newline (a record cut short), so nothing is appended: check it with 'imgfs custody verify'")
	}
	// Read backwards for the newline before the last one: the line is body[lineStart : size-1].
	const chunk = 64 << 10
	var tail []byte // the bytes from start to size-1
	start := size - 1
	for start > 0 {
		k := min(int64(chunk), start)
		buf := make([]byte, k)
		if _, err := f.ReadAt(buf, start-k); err != nil {
			return nil, 0, err
		}
		start -= k
		if i := bytes.LastIndexByte(buf, '\n'); i >= 0 {
			tail = append(buf[i+1:], tail...)
			start += int64(i) + 1
			break
		}
		tail = append(buf, tail...)
		if int64(len(tail)) > MaxLine {
			return nil, 0, fmt.Errorf("the last line is longer than %d bytes", MaxLine)
		}
	}
	// The line number: count newlines before start (logs are small; this is one read).
	n := 1
	if start > 0 {
		c, err := countNewlines(io.NewSectionReader(f, 0, start))
		if err != nil {
			return nil, 0, err
		}
		n = c + 1
	}
	return tail, n, nil
}

func countNewlines(r io.Reader) (int, error) {
	buf := make([]byte, 64<<10)
	n := 0
	for {
		k, err := r.Read(buf)
		n += bytes.Count(buf[:k], []byte{'\n'})
		if err == io.EOF {
			return n, nil
		}
		if err != nil {
			return n, err
		}
	}
}

// fill sets what Append fills in when empty.
func fill(r *Record) error {
	if r.Action == "" {
		return errors.New("record without an action")
	}
	if r.Result == "" {
		r.Result = ResultOK
		if r.Error != "" {
			r.Result = ResultError
		}
	}
	if r.Time.IsZero() {
		r.Time = time.Now()
	}
	r.Time = r.Time.UTC()
	if r.User == "" {
		r.User = currentUser()
	}
	if r.Host == "" {
		r.Host, _ = os.Hostname()
	}
	if r.PID == 0 {
		r.PID = os.Getpid()
	}
	if r.Command == nil {
		r.Command = append([]string(nil), os.Args...)
	}
	return nil
}

// currentUser is "name (uid N)", with the sudo user when there is one.
func currentUser() string {
	uid := os.Getuid()
	name := "?"
	if u, err := user.LookupId(strconv.Itoa(uid)); err == nil {
		name = u.Username
	}
	s := fmt.Sprintf("%s (uid %d)", name, uid)
	if su := os.Getenv("SUDO_USER"); su != "" && uid == 0 {
		s += " via sudo from " + su
	}
	return s
}
