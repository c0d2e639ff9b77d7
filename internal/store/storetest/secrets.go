package storetest

import (
	"bytes"
	"errors"
	"testing"
	"time"

	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

func exerciseSecrets(t *testing.T, open func(t *testing.T) store.Store) {
	t.Run("PutGetListDelete", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		const ns = store.DefaultNamespace
		if _, err := b.s.SecretGet(b.ctx, ns, "API_KEY"); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("SecretGet of a missing secret: %v, want ErrNotFound", err)
		}
		for i, c := range []struct {
			cipher []byte
			now    time.Time
		}{{[]byte("\x00first\xff"), at(0)}, {[]byte("second"), at(time.Hour)}} {
			v, err := b.s.SecretPut(b.ctx, &store.SecretPutParams{Namespace: ns, Name: "API_KEY", Ciphertext: c.cipher, Now: c.now})
			if err != nil || v != i+1 {
				t.Fatalf("SecretPut #%d = %d, %v; want version %d", i+1, v, err, i+1)
			}
			got, err := b.s.SecretGet(b.ctx, ns, "API_KEY")
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got.Ciphertext, c.cipher) || got.Version != i+1 || !got.CreatedAt.Equal(stored(at(0))) ||
				!got.RotatedAt.Equal(stored(c.now)) || got.RotatedAt.Location() != time.UTC || got.Namespace != ns {
				t.Errorf("SecretGet after put #%d = %+v", i+1, got)
			}
		}
		if _, err := b.s.SecretPut(b.ctx, &store.SecretPutParams{Namespace: ns, Name: "B", Ciphertext: []byte("b"), Now: at(0)}); err != nil {
			t.Fatal(err)
		}
		list, err := b.s.SecretList(b.ctx, ns)
		if err != nil || len(list) != 2 || list[0].Name != "API_KEY" || list[1].Name != "B" {
			t.Fatalf("SecretList = %d, %v; want API_KEY, B", len(list), err)
		}
		if list[0].Ciphertext != nil || list[0].Version != 2 {
			t.Errorf("SecretList gave %+v, want version 2 and no ciphertext", list[0])
		}
		for _, want := range []bool{true, false} {
			if existed, err := b.s.SecretDelete(b.ctx, ns, "API_KEY"); err != nil || existed != want {
				t.Fatalf("SecretDelete = %v, %v; want %v", existed, err, want)
			}
		}
		if _, err := b.s.SecretGet(b.ctx, ns, "API_KEY"); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("SecretGet after delete: %v, want ErrNotFound", err)
		}
	})

	// The same name in two namespaces is two secrets: each namespace
	// reads, lists, versions and removes only its own.
	t.Run("Namespaces", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		put := func(ns, cipher string) int {
			t.Helper()
			v, err := b.s.SecretPut(b.ctx, &store.SecretPutParams{Namespace: ns, Name: "TOKEN", Ciphertext: []byte(cipher), Now: at(0)})
			if err != nil {
				t.Fatal(err)
			}
			return v
		}
		if put("team-a", "a1") != 1 || put("team-b", "b1") != 1 || put("team-a", "a2") != 2 {
			t.Fatal("versions are not counted per namespace")
		}
		for ns, want := range map[string]string{"team-a": "a2", "team-b": "b1"} {
			got, err := b.s.SecretGet(b.ctx, ns, "TOKEN")
			if err != nil || string(got.Ciphertext) != want || got.Namespace != ns {
				t.Fatalf("SecretGet(%s) = %+v, %v; want %s", ns, got, err, want)
			}
		}
		if _, err := b.s.SecretGet(b.ctx, store.DefaultNamespace, "TOKEN"); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("SecretGet of the default namespace: %v, want ErrNotFound", err)
		}
		if list, err := b.s.SecretList(b.ctx, "team-b"); err != nil || len(list) != 1 || list[0].Version != 1 {
			t.Fatalf("SecretList(team-b) = %+v, %v", list, err)
		}
		if existed, err := b.s.SecretDelete(b.ctx, "team-c", "TOKEN"); err != nil || existed {
			t.Fatalf("SecretDelete of another namespace's name = %v, %v; want false", existed, err)
		}
		if existed, err := b.s.SecretDelete(b.ctx, "team-a", "TOKEN"); err != nil || !existed {
			t.Fatalf("SecretDelete(team-a) = %v, %v", existed, err)
		}
		if _, err := b.s.SecretGet(b.ctx, "team-b", "TOKEN"); err != nil {
			t.Fatalf("team-b's secret went with team-a's: %v", err)
		}
	})

	t.Run("VaultKey", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		if _, err := b.s.VaultKeyGet(b.ctx); !errors.Is(err, routine.ErrNotFound) {
			t.Fatalf("VaultKeyGet before init: %v, want ErrNotFound", err)
		}
		got, err := b.s.VaultKeyInit(b.ctx, []byte("first"), at(0))
		if err != nil || string(got) != "first" {
			t.Fatalf("VaultKeyInit = %q, %v", got, err)
		}
		// The first key stays.
		got, err = b.s.VaultKeyInit(b.ctx, []byte("second"), at(time.Hour))
		if err != nil || string(got) != "first" {
			t.Fatalf("second VaultKeyInit = %q, %v; want the first key", got, err)
		}
		if got, err := b.s.VaultKeyGet(b.ctx); err != nil || string(got) != "first" {
			t.Fatalf("VaultKeyGet = %q, %v", got, err)
		}
	})

	t.Run("Audit", func(t *testing.T) {
		t.Parallel()
		b := setup(t, open)
		recs := []*store.AuditRecord{
			{Time: at(0), Action: store.AuditSet, Secret: "A", Provider: "builtin", OK: true},
			{Time: at(time.Minute), Action: store.AuditResolve, Secret: "A", Provider: "builtin", Routine: "r", RunID: "01RUN", OK: true},
			{Time: at(2 * time.Minute), Action: store.AuditResolve, Secret: "B", Provider: "vault", Routine: "r", RunID: "01RUN",
				Error: "vault: kv/data/b#k: permission denied"},
		}
		if err := b.s.AuditAppend(b.ctx, recs); err != nil {
			t.Fatal(err)
		}
		check := func(p *store.AuditListParams, want ...*store.AuditRecord) {
			t.Helper()
			got, err := b.s.AuditList(b.ctx, p)
			if err != nil {
				t.Fatal(err)
			}
			if len(got) != len(want) {
				t.Fatalf("AuditList(%+v) = %d records, want %d", p, len(got), len(want))
			}
			for i := range want {
				w := *want[i]
				w.Time = stored(w.Time)
				if *got[i] != w {
					t.Errorf("AuditList(%+v)[%d] = %+v, want %+v", p, i, got[i], w)
				}
			}
		}
		check(&store.AuditListParams{}, recs...)
		check(&store.AuditListParams{Secret: "A"}, recs[0], recs[1])
		check(&store.AuditListParams{Since: at(time.Minute)}, recs[1], recs[2])
		check(&store.AuditListParams{Limit: 2}, recs[1], recs[2])
	})
}
