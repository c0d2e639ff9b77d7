package storetest

import (
	"errors"
	"fmt"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseLogs(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("AppendList", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run, other := b.createRun(t, nil), b.createRun(t, nil)
		// Seven lines of two steps in one batch, with a line of another
		// run in the middle of it.
		var all []routine.LogLine
		batch := []routine.LogLine{}
		for i := range 7 {
			step, stream := "build", routine.StreamStdout
			if i%3 == 2 {
				step, stream = "test", routine.StreamStderr
			}
			l := routine.LogLine{RunID: run.ID, Step: step, Seq: int64(i + 1),
				Time: at(time.Duration(i) * time.Millisecond), Stream: stream, Text: fmt.Sprintf("line %d", i+1)}
			all = append(all, l)
			batch = append(batch, l)
			if i == 3 {
				batch = append(batch, routine.LogLine{RunID: other.ID, Step: "build", Seq: 1, Time: epoch,
					Stream: routine.StreamSystem, Text: "other"})
			}
		}
		if err := b.s.LogAppend(b.ctx, batch); err != nil {
			t.Fatalf("LogAppend: %v", err)
		}
		seqs := func(s ...int64) []routine.LogLine {
			var ls []routine.LogLine
			for _, n := range s {
				ls = append(ls, all[n-1])
			}
			return ls
		}
		for _, tc := range []struct {
			name string
			p    store.LogListParams
			want []routine.LogLine
		}{
			{"run", store.LogListParams{RunID: run.ID}, all},
			{"step", store.LogListParams{RunID: run.ID, Step: "test"}, seqs(3, 6)},
			{"after", store.LogListParams{RunID: run.ID, AfterSeq: 4}, seqs(5, 6, 7)},
			{"limit", store.LogListParams{RunID: run.ID, Limit: 2}, seqs(1, 2)},
			{"after and limit", store.LogListParams{RunID: run.ID, AfterSeq: 2, Limit: 3}, seqs(3, 4, 5)},
			{"step after and limit", store.LogListParams{RunID: run.ID, Step: "build", AfterSeq: 1, Limit: 2},
				seqs(2, 4)},
			{"after the end", store.LogListParams{RunID: run.ID, AfterSeq: 7}, nil},
			{"unknown step", store.LogListParams{RunID: run.ID, Step: "deploy"}, nil},
			{"unknown run", store.LogListParams{RunID: newID()}, nil},
		} {
			t.Run(tc.name, func(t *testing.T) { b.checkLog(t, &tc.p, tc.want) })
		}
	})

	t.Run("AppendBatches", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		var all []routine.LogLine
		for _, size := range []int{1, 4, 250, 7} {
			var ls []routine.LogLine
			for range size {
				seq := int64(len(all) + len(ls) + 1)
				ls = append(ls, routine.LogLine{RunID: run.ID, Step: "s", Seq: seq,
					Time: at(time.Duration(seq) * time.Millisecond), Stream: routine.StreamStdout, Text: fmt.Sprint(seq)})
			}
			if err := b.s.LogAppend(b.ctx, ls); err != nil {
				t.Fatalf("LogAppend: %v", err)
			}
			all = append(all, ls...)
		}
		if err := b.s.LogAppend(b.ctx, nil); err != nil {
			t.Fatalf("LogAppend of no lines: %v", err)
		}
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, all)
	})

	t.Run("AnyBytes", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		var ls []routine.LogLine
		for i, text := range []string{
			"nul\x00in the middle",
			"\x00",
			"invalid \xff\xfe utf-8 \xc3\x28",
			"truncated rune \xe2\x82",
			"\r\n\t\x1b[31mcolour\x1b[0m",
			"",
			"ok ✓",
		} {
			ls = append(ls, routine.LogLine{RunID: run.ID, Step: "s", Seq: int64(i + 1), Time: epoch,
				Stream: routine.StreamStdout, Text: text})
		}
		if err := b.s.LogAppend(b.ctx, ls); err != nil {
			t.Fatalf("LogAppend: %v", err)
		}
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, ls)
	})

	t.Run("LargeLine", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		text := strings.Repeat("0123456789abcdef", 1<<16) // 1 MiB
		ls := []routine.LogLine{
			{RunID: run.ID, Step: "s", Seq: 1, Time: epoch, Stream: routine.StreamStdout, Text: text},
			{RunID: run.ID, Step: "s", Seq: 2, Time: epoch, Stream: routine.StreamStdout, Text: "after"},
		}
		if err := b.s.LogAppend(b.ctx, ls); err != nil {
			t.Fatalf("LogAppend: %v", err)
		}
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, ls)
	})

	t.Run("DuplicateSeqAppendsNothing", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		run := b.createRun(t, nil)
		line := func(seq int64) routine.LogLine {
			return routine.LogLine{RunID: run.ID, Step: "s", Seq: seq, Time: epoch, Stream: routine.StreamStdout,
				Text: fmt.Sprint(seq)}
		}
		first := []routine.LogLine{line(1), line(2)}
		if err := b.s.LogAppend(b.ctx, first); err != nil {
			t.Fatalf("LogAppend: %v", err)
		}
		// A taken seq in a short batch and deep in a long one.
		long := []routine.LogLine{}
		for seq := range int64(200) {
			long = append(long, line(seq+3))
		}
		long[150] = line(1)
		for _, batch := range [][]routine.LogLine{{line(3), line(2), line(4)}, long} {
			err := b.s.LogAppend(b.ctx, batch)
			if !errors.Is(err, routine.ErrConflict) {
				t.Fatalf("LogAppend of a taken seq: got %v, want ErrConflict", err)
			}
		}
		b.checkLog(t, &store.LogListParams{RunID: run.ID}, first)
	})

	t.Run("AppendUnknownRun", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		err := b.s.LogAppend(b.ctx, []routine.LogLine{{RunID: newID(), Step: "s", Seq: 1, Time: epoch,
			Stream: routine.StreamStdout, Text: "x"}})
		if !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("LogAppend for a missing run: got %v, want ErrNotFound", err)
		}
	})
}

// checkLog fails unless LogList(p) returns want, with times as stored.
func (b *testBundle) checkLog(t *testing.T, p *store.LogListParams, want []routine.LogLine) {
	t.Helper()
	got, err := b.s.LogList(b.ctx, p)
	if err != nil {
		t.Fatalf("LogList: %v", err)
	}
	w := make([]routine.LogLine, len(want))
	for i, l := range want {
		l.Time = stored(l.Time)
		w[i] = l
	}
	for _, l := range got {
		if l.Time.Location() != time.UTC {
			t.Errorf("line %d: time %v is not in UTC", l.Seq, l.Time)
		}
	}
	if len(got) != len(w) || (len(w) > 0 && !reflect.DeepEqual(got, w)) {
		t.Errorf("LogList(%+v):\n got %s\nwant %s", *p, showLines(got), showLines(w))
	}
}

// showLines formats lines for a failure message, with their text quoted so
// that bytes which are not UTF-8 show, and clipped.
func showLines(ls []routine.LogLine) string {
	var b strings.Builder
	for _, l := range ls {
		text := l.Text
		if len(text) > 80 {
			text = text[:80]
		}
		fmt.Fprintf(&b, "\n\t%s #%d %s %s %s %q (%d bytes)", l.RunID, l.Seq, l.Step, l.Time.Format(time.RFC3339Nano),
			l.Stream, text, len(l.Text))
	}
	return b.String()
}
