package s3_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/credentials"
	awss3 "github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"

	"github.com/routines-dev/routines/internal/artifacts"
	"github.com/routines-dev/routines/internal/artifacts/artifactstest"
	"github.com/routines-dev/routines/internal/artifacts/s3"
)

const bucket = "artifacts"

// setup serves an in-process S3 (gofakes3, speaking the S3 protocol over
// HTTP on loopback) with one bucket, and returns a store on it under
// prefix and a client of its own to look behind the store's back.
func setup(t *testing.T, prefix string) (*s3.Store, *awss3.Client) {
	t.Helper()
	backend := s3mem.New()
	if err := backend.CreateBucket(bucket); err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(checksums(t, gofakes3.New(backend).Server()))
	t.Cleanup(srv.Close)
	creds := credentials.NewStaticCredentialsProvider("AKIDTEST", "secret", "")
	cfg, err := s3.ParseURL("s3://" + bucket + "/" + prefix + "?endpoint=" + srv.URL)
	if err != nil {
		t.Fatal(err)
	}
	cfg.Credentials = creds
	st, err := s3.New(t.Context(), cfg)
	if err != nil {
		t.Fatal(err)
	}
	raw := awss3.New(awss3.Options{
		BaseEndpoint: aws.String(srv.URL), UsePathStyle: true, Region: "us-east-1", Credentials: creds,
		RequestChecksumCalculation: aws.RequestChecksumCalculationWhenRequired,
	})
	return st, raw
}

// checksums does what S3 does and gofakes3 does not: it refuses an
// upload whose bytes differ from its x-amz-checksum-sha256.
func checksums(t *testing.T, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		want := r.Header.Get("X-Amz-Checksum-Sha256")
		if r.Method == http.MethodPut && want != "" {
			body, err := io.ReadAll(r.Body)
			if err != nil {
				t.Error(err)
			}
			got := sha256.Sum256(body)
			if base64.StdEncoding.EncodeToString(got[:]) != want {
				w.WriteHeader(http.StatusBadRequest)
				io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>BadDigest</Code><Message>The SHA256 you specified did not match the calculated checksum.</Message></Error>`)
				return
			}
			r.Body = io.NopCloser(bytes.NewReader(body))
		}
		next.ServeHTTP(w, r)
	})
}

func TestConformance(t *testing.T) {
	t.Parallel()
	for _, prefix := range []string{"", "team/ci"} {
		t.Run("prefix="+prefix, func(t *testing.T) {
			t.Parallel()
			artifactstest.Exercise(t, func(t *testing.T) *artifactstest.Harness {
				st, raw := setup(t, prefix)
				key := func(run, step, name string) string {
					return strings.TrimPrefix(prefix+"/", "/") + run + "/" + step + "/" + name
				}
				return &artifactstest.Harness{Store: st, Corrupt: func(t *testing.T, run, step, name string) {
					corrupt(t, raw, key(run, step, name))
				}}
			})
		})
	}
}

// corrupt rewrites an object with one byte flipped and its metadata kept.
func corrupt(t *testing.T, raw *awss3.Client, key string) {
	ctx := t.Context()
	out, err := raw.GetObject(ctx, &awss3.GetObjectInput{Bucket: aws.String(bucket), Key: &key})
	if err != nil {
		t.Fatalf("get %s: %v", key, err)
	}
	b, err := io.ReadAll(out.Body)
	out.Body.Close()
	if err != nil {
		t.Fatal(err)
	}
	b[len(b)/2] ^= 0xff
	if _, err := raw.PutObject(ctx, &awss3.PutObjectInput{Bucket: aws.String(bucket), Key: &key, Body: bytes.NewReader(b), Metadata: out.Metadata}); err != nil {
		t.Fatalf("put %s: %v", key, err)
	}
}

// changing reads one text, then another once it is read again: a file
// that a process left behind rewrites between the checksum and the upload.
type changing struct {
	*strings.Reader
	seeks int
}

func (c *changing) Seek(off int64, whence int) (int64, error) {
	if c.seeks++; c.seeks == 2 {
		c.Reader = strings.NewReader("EVIL")
	}
	return c.Reader.Seek(off, whence)
}

// TestUploadCarriesChecksum: the artifact's SHA-256 goes with its upload,
// so bytes that changed since it was computed are refused.
func TestUploadCarriesChecksum(t *testing.T) {
	t.Parallel()
	st, _ := setup(t, "")
	const run = "01RUNAAAAAAAAAAAAAAAAAAAAA"
	if _, err := st.Put(t.Context(), run, "s", "f", &changing{Reader: strings.NewReader("good")}, 4); err == nil || !strings.Contains(err.Error(), "BadDigest") {
		t.Fatalf("Put of bytes that changed under the checksum: %v, want BadDigest", err)
	}
	if _, err := st.Get(t.Context(), run, "s", "f"); !errors.Is(err, artifacts.ErrNotFound) {
		t.Fatalf("Get after a refused Put: %v, want ErrNotFound", err)
	}
}

func TestParseURL(t *testing.T) {
	t.Parallel()
	for _, tc := range []struct{ url, want string }{
		{"s3://b", "b|||"},
		{"s3://b/a/b/?region=eu-west-1", "b|a/b||eu-west-1"},
		{"s3://b/p?endpoint=http://127.0.0.1:9000", "b|p|http://127.0.0.1:9000|"},
		{"s3:///p", "error"},
		{"s3://user:pw@b/p", "error"},
		{"http://b/p", "error"},
		{"s3://b?endpoint=127.0.0.1:9000", "error"},
		{"s3://b?bucket=c", "error"},
	} {
		c, err := s3.ParseURL(tc.url)
		got := c.Bucket + "|" + c.Prefix + "|" + c.Endpoint + "|" + c.Region
		if err != nil {
			got = "error"
			if !strings.Contains(err.Error(), "s3://bucket/prefix") && !strings.Contains(err.Error(), "such as http://") {
				t.Errorf("%s: the error does not say what to write: %v", tc.url, err)
			}
		}
		if got != tc.want {
			t.Errorf("ParseURL(%q) = %s (%v), want %s", tc.url, got, err, tc.want)
		}
	}
}

// TestNoRegion: without an endpoint nor a region, opening says how to
// give one.
func TestNoRegion(t *testing.T) {
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	t.Setenv("AWS_CONFIG_FILE", "/nonexistent")
	_, err := s3.OpenURL(context.Background(), "s3://b/p")
	if err == nil || !strings.Contains(err.Error(), "?region=") {
		t.Fatalf("OpenURL without a region: %v", err)
	}
}
