// Package s3 is the artifact store in an S3 bucket, on AWS or on any
// server that speaks its protocol (MinIO, Ceph, R2, …), through
// aws-sdk-go-v2. An artifact is the object <prefix>/<run>/<step>/<name>,
// its SHA-256 the object's metadata sha256. The same checksum goes with
// the upload (x-amz-checksum-sha256), so that S3, and the servers that
// check it, refuse bytes that changed on the way.
// Credentials come from the SDK's chain: the AWS_* environment, the
// shared files, the instance's role.
package s3

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/url"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/routines-dev/routines/internal/artifacts"
)

// Config says where the bucket is.
type Config struct {
	Bucket string
	// Prefix is prepended to every key, without its slashes: "ci"
	// keeps artifacts under ci/<run>/….
	Prefix string
	// Endpoint is the base URL of an S3-compatible server, such as
	// http://127.0.0.1:9000; empty is AWS. With one, buckets are
	// addressed by path (endpoint/bucket/key), as such servers expect.
	Endpoint string
	// Region is the bucket's region; empty leaves it to the SDK's chain
	// (AWS_REGION, the shared config), and us-east-1 with an Endpoint.
	Region string
	// Credentials, when set, replace the SDK's chain.
	Credentials aws.CredentialsProvider
}

// ParseURL reads s3://bucket/prefix?endpoint=URL&region=R.
func ParseURL(raw string) (Config, error) {
	const want = "want s3://bucket/prefix?endpoint=http://host:port&region=REGION (endpoint and region optional)"
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "s3" || u.Host == "" || u.User != nil || u.Fragment != "" {
		return Config{}, fmt.Errorf("artifact store %q: %s", raw, want)
	}
	c := Config{Bucket: u.Host, Prefix: strings.Trim(u.Path, "/")}
	for k, v := range u.Query() {
		switch k {
		case "endpoint":
			c.Endpoint = v[0]
			if e, err := url.Parse(c.Endpoint); err != nil || (e.Scheme != "http" && e.Scheme != "https") || e.Host == "" {
				return Config{}, fmt.Errorf("artifact store %q: endpoint %q is not a URL such as http://127.0.0.1:9000", raw, c.Endpoint)
			}
		case "region":
			c.Region = v[0]
		default:
			return Config{}, fmt.Errorf("artifact store %q: unknown parameter %q: %s", raw, k, want)
		}
	}
	return c, nil
}

// OpenURL opens the store of an s3:// URL (ParseURL): the driver of the
// scheme s3 in artifacts.Drivers.
func OpenURL(ctx context.Context, raw string) (artifacts.Store, error) {
	c, err := ParseURL(raw)
	if err != nil {
		return nil, err
	}
	return New(ctx, c)
}

// Store is an artifacts.Store in a bucket.
type Store struct {
	client *s3.Client
	bucket string
	prefix string // "" or "ci/"
}

// New returns the store of c. It sends no request: a wrong bucket or
// credentials show at the first artifact.
func New(ctx context.Context, c Config) (*Store, error) {
	var opts []func(*config.LoadOptions) error
	if c.Region != "" {
		opts = append(opts, config.WithRegion(c.Region))
	}
	if c.Credentials != nil {
		opts = append(opts, config.WithCredentialsProvider(c.Credentials))
	}
	awsCfg, err := config.LoadDefaultConfig(ctx, opts...)
	if err != nil {
		return nil, fmt.Errorf("artifact store: load AWS configuration: %w", err)
	}
	if awsCfg.Region == "" {
		if c.Endpoint == "" {
			return nil, errors.New("artifact store: no AWS region: add ?region=eu-west-1 to the s3:// URL or set AWS_REGION")
		}
		awsCfg.Region = "us-east-1" // what S3-compatible servers sign with unless told otherwise
	}
	client := s3.NewFromConfig(awsCfg, func(o *s3.Options) {
		if c.Endpoint != "" {
			o.BaseEndpoint = aws.String(c.Endpoint)
			o.UsePathStyle = true
			// Checksums only where the protocol requires them: many
			// S3-compatible servers refuse the trailers the SDK sends
			// by default. The artifact's own SHA-256 still goes with
			// each upload.
			o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired
			o.ResponseChecksumValidation = aws.ResponseChecksumValidationWhenRequired
		}
	})
	s := &Store{client: client, bucket: c.Bucket}
	if c.Prefix != "" {
		s.prefix = c.Prefix + "/"
	}
	return s, nil
}

// sumKey is the metadata that holds an artifact's SHA-256 (x-amz-meta-sha256).
const sumKey = "sha256"

func (s *Store) runPrefix(run string) string { return s.prefix + run + "/" }

// Put implements artifacts.Store.
func (s *Store) Put(ctx context.Context, run, step, name string, r io.ReadSeeker, size int64) (artifacts.Info, error) {
	info := artifacts.Info{Step: step, Name: name, Size: size}
	if err := artifacts.CheckKey(run, step, name); err != nil {
		return info, err
	}
	var err error
	if info.Sum, err = artifacts.Sum(r, size); err != nil {
		return info, fmt.Errorf("put artifact %s/%s: %w", step, name, err)
	}
	raw, _ := hex.DecodeString(info.Sum)
	_, err = s.client.PutObject(ctx, &s3.PutObjectInput{
		Bucket:         &s.bucket,
		Key:            aws.String(s.runPrefix(run) + step + "/" + name),
		Body:           r,
		ContentLength:  aws.Int64(size),
		Metadata:       map[string]string{sumKey: info.Sum},
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(raw)),
	})
	if err != nil {
		return info, fmt.Errorf("put artifact %s/%s in bucket %s: %w", step, name, s.bucket, err)
	}
	return info, nil
}

// Get implements artifacts.Store.
func (s *Store) Get(ctx context.Context, run, step, name string) (io.ReadCloser, error) {
	if err := artifacts.CheckKey(run, step, name); err != nil {
		return nil, err
	}
	out, err := s.client.GetObject(ctx, &s3.GetObjectInput{Bucket: &s.bucket, Key: aws.String(s.runPrefix(run) + step + "/" + name)})
	if err != nil {
		return nil, fmt.Errorf("get artifact %s/%s from bucket %s: %w", step, name, s.bucket, notFound(err))
	}
	sum := metadata(out.Metadata)
	if sum == "" || out.ContentLength == nil {
		out.Body.Close()
		return nil, fmt.Errorf("get artifact %s/%s from bucket %s: %w: the object has no sha256 metadata (not put by routines)", step, name, s.bucket, artifacts.ErrChecksum)
	}
	return artifacts.Verify(out.Body, step, name, *out.ContentLength, sum), nil
}

// metadata returns the sha256 of an object's metadata, whatever the case
// of its key.
func metadata(m map[string]string) string {
	for k, v := range m {
		if strings.EqualFold(k, sumKey) {
			return v
		}
	}
	return ""
}

// notFound turns S3's answers for a missing object into ErrNotFound.
func notFound(err error) error {
	var nsk *types.NoSuchKey
	var nf *types.NotFound
	var api smithy.APIError
	if errors.As(err, &nsk) || errors.As(err, &nf) || errors.As(err, &api) && (api.ErrorCode() == "NoSuchKey" || api.ErrorCode() == "NotFound") {
		return fmt.Errorf("%w (%v)", artifacts.ErrNotFound, err)
	}
	return err
}

// List implements artifacts.Store. The listing of a bucket carries no
// metadata, so each artifact's checksum costs a HEAD: List is for a run
// resumed on another worker, once.
func (s *Store) List(ctx context.Context, run string) ([]artifacts.Info, error) {
	if err := artifacts.CheckRun(run); err != nil {
		return nil, err
	}
	var out []artifacts.Info
	err := s.each(ctx, run, func(objs []types.Object) error {
		for _, o := range objs {
			step, name, _ := strings.Cut(strings.TrimPrefix(*o.Key, s.runPrefix(run)), "/")
			head, err := s.client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: &s.bucket, Key: o.Key})
			if err != nil {
				if errors.Is(notFound(err), artifacts.ErrNotFound) {
					continue // deleted under the listing
				}
				return err
			}
			out = append(out, artifacts.Info{Step: step, Name: name, Size: aws.ToInt64(o.Size), Sum: metadata(head.Metadata)})
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("list artifacts of run %s in bucket %s: %w", run, s.bucket, err)
	}
	artifacts.Sort(out)
	return out, nil
}

// each calls fn with the objects of run, a page at a time. (No
// paginator: it would hold the client as an interface, which keeps every
// operation of the client in the binary.)
func (s *Store) each(ctx context.Context, run string, fn func([]types.Object) error) error {
	in := &s3.ListObjectsV2Input{Bucket: &s.bucket, Prefix: aws.String(s.runPrefix(run))}
	for {
		page, err := s.client.ListObjectsV2(ctx, in)
		if err != nil {
			return err
		}
		if err := fn(page.Contents); err != nil {
			return err
		}
		if !aws.ToBool(page.IsTruncated) || aws.ToString(page.NextContinuationToken) == "" {
			return nil
		}
		in.ContinuationToken = page.NextContinuationToken
	}
}

// Delete implements artifacts.Store: a DeleteObjects per page of the
// listing (up to 1,000 objects).
func (s *Store) Delete(ctx context.Context, run string) error {
	if err := artifacts.CheckRun(run); err != nil {
		return err
	}
	err := s.each(ctx, run, func(objs []types.Object) error {
		if len(objs) == 0 {
			return nil
		}
		ids := make([]types.ObjectIdentifier, len(objs))
		for i, o := range objs {
			ids[i] = types.ObjectIdentifier{Key: o.Key}
		}
		out, err := s.client.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: &s.bucket, Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return err
		}
		if len(out.Errors) > 0 {
			e := out.Errors[0]
			return fmt.Errorf("%d object(s) not deleted, %s: %s", len(out.Errors), aws.ToString(e.Key), aws.ToString(e.Message))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete artifacts of run %s in bucket %s: %w", run, s.bucket, err)
	}
	return nil
}

var _ artifacts.Store = (*Store)(nil)
