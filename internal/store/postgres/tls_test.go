package postgres_test

import (
	"context"
	"net/url"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"

	"github.com/routines-dev/routines/internal/pgtest"
	"github.com/routines-dev/routines/internal/store/postgres"
	"github.com/routines-dev/routines/internal/tlstest"
)

// withQuery returns the URL raw with the query parameters of q set.
func withQuery(t *testing.T, raw string, q map[string]string) string {
	t.Helper()
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	v := u.Query()
	for k, val := range q {
		v.Set(k, val)
	}
	u.RawQuery = v.Encode()
	return u.String()
}

// The store honours sslmode and sslrootcert in its URL: verify-full
// opens with the CA of the server's certificate and refuses another
// CA's, or none (the system's roots), saying what to set; require
// encrypts without checking. Every connection it opens is encrypted.
func TestStoreURLSSLMode(t *testing.T) {
	t.Parallel()
	ca := tlstest.NewCA(t, "database CA")
	cert, key := ca.Issue(t, "db", "127.0.0.1")
	db := pgtest.StartServerTLS(t, pgtest.KeyPair{Cert: cert, Key: key}).Database(t)
	caFile, wrongCA := ca.CAFile(t), tlstest.NewCA(t, "another CA").CAFile(t)

	for name, q := range map[string]map[string]string{
		"verify-full with the CA": {"sslmode": "verify-full", "sslrootcert": caFile},
		"verify-ca with the CA":   {"sslmode": "verify-ca", "sslrootcert": caFile},
		"require":                 {"sslmode": "require"},
	} {
		u := withQuery(t, db, q)
		s, err := postgres.Open(t.Context(), u, postgres.Options{})
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		s.Close()
		if !encrypted(t, u) {
			t.Errorf("%s: the connection is not encrypted", name)
		}
	}
	for name, q := range map[string]map[string]string{
		"verify-full with another CA": {"sslmode": "verify-full", "sslrootcert": wrongCA},
		"verify-full with no CA":      {"sslmode": "verify-full"},
	} {
		s, err := postgres.Open(t.Context(), withQuery(t, db, q), postgres.Options{})
		if err == nil {
			s.Close()
			t.Fatalf("%s: opened", name)
		}
		if msg := err.Error(); !strings.Contains(msg, "certificate signed by unknown authority") || !strings.Contains(msg, "sslrootcert=") {
			t.Errorf("%s: %v", name, err)
		}
	}
	if !strings.Contains(db, "sslmode=disable") || encrypted(t, db) {
		t.Error("sslmode=disable: encrypted, or the URL says otherwise")
	}
}

// encrypted reports whether a connection to u is TLS, as the server sees it.
func encrypted(t *testing.T, u string) bool {
	t.Helper()
	conn, err := pgx.Connect(t.Context(), u)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close(context.Background())
	var ssl bool
	if err := conn.QueryRow(t.Context(), "SELECT ssl FROM pg_stat_ssl WHERE pid = pg_backend_pid()").Scan(&ssl); err != nil {
		t.Fatal(err)
	}
	return ssl
}
