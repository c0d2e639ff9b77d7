package deploy

import (
	"bytes"
	"context"
	"fmt"
	"maps"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	"sigs.k8s.io/yaml"

	"github.com/routines-dev/routines/internal/metrics"
	"github.com/routines-dev/routines/internal/routine"
	"github.com/routines-dev/routines/internal/store"
)

// manifests are the Kubernetes objects of kubernetes/, decoded, by kind.
type manifests struct {
	deployments map[string]*appsv1.Deployment
	services    []*corev1.Service
	secrets     map[string]*corev1.Secret
	pdbs        []*policyv1.PodDisruptionBudget
	hpas        []*autoscalingv2.HorizontalPodAutoscaler
}

// readManifests decodes every document of kubernetes/*.yaml strictly
// into the API type its apiVersion and kind name: an unknown field, a
// duplicate key, a value of the wrong type or an unknown kind fails.
func readManifests(t *testing.T) *manifests {
	t.Helper()
	files, err := filepath.Glob("kubernetes/*.yaml")
	if err != nil || len(files) == 0 {
		t.Fatalf("no manifests in kubernetes/ (%v)", err)
	}
	m := &manifests{deployments: map[string]*appsv1.Deployment{}, secrets: map[string]*corev1.Secret{}}
	for _, f := range files {
		data, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		for i, doc := range bytes.Split(data, []byte("\n---\n")) {
			where := fmt.Sprintf("%s, document %d", f, i+1)
			var tm metav1.TypeMeta
			if err := yaml.Unmarshal(doc, &tm); err != nil {
				t.Fatalf("%s: %v", where, err)
			}
			var obj any
			switch tm.APIVersion + " " + tm.Kind {
			case "apps/v1 Deployment":
				d := &appsv1.Deployment{}
				obj, m.deployments[name(t, where, doc)] = d, d
			case "v1 Service":
				s := &corev1.Service{}
				obj, m.services = s, append(m.services, s)
			case "v1 Secret":
				s := &corev1.Secret{}
				obj, m.secrets[name(t, where, doc)] = s, s
			case "policy/v1 PodDisruptionBudget":
				p := &policyv1.PodDisruptionBudget{}
				obj, m.pdbs = p, append(m.pdbs, p)
			case "autoscaling/v2 HorizontalPodAutoscaler":
				h := &autoscalingv2.HorizontalPodAutoscaler{}
				obj, m.hpas = h, append(m.hpas, h)
			default:
				t.Fatalf("%s: apiVersion %q kind %q: not a kind these checks know; add it to readManifests", where, tm.APIVersion, tm.Kind)
			}
			if err := yaml.UnmarshalStrict(doc, obj); err != nil {
				t.Errorf("%s (%s): %v", where, tm.Kind, err)
			}
		}
	}
	return m
}

// name is the metadata.name of a document, which must have one.
func name(t *testing.T, where string, doc []byte) string {
	t.Helper()
	var o metav1.PartialObjectMetadata
	if err := yaml.Unmarshal(doc, &o); err != nil || o.Name == "" {
		t.Fatalf("%s: no metadata.name (%v)", where, err)
	}
	return o.Name
}

// selects reports whether selector selects pods labelled labels.
func selects(selector, labels map[string]string) bool {
	if len(selector) == 0 {
		return false
	}
	for k, v := range selector {
		if labels[k] != v {
			return false
		}
	}
	return true
}

// TestKubernetesManifests decodes the manifests strictly and checks that
// they fit together and with the binary: selectors select, probes and
// services name ports that exist, the Secret holds what servers and
// workers read, command lines parse, pods run as the image's user, and a
// worker's termination grace leaves its drain the time it takes.
func TestKubernetesManifests(t *testing.T) {
	t.Parallel()
	m := readManifests(t)
	server, worker := m.deployments["routines-server"], m.deployments["routines-worker"]
	if server == nil || worker == nil || len(m.deployments) != 2 {
		t.Fatalf("want the Deployments routines-server and routines-worker, got %v", slices.Sorted(maps.Keys(m.deployments)))
	}
	var image string
	for name, d := range m.deployments {
		where := "Deployment " + name
		pod := d.Spec.Template
		if d.Spec.Selector == nil || !selects(d.Spec.Selector.MatchLabels, pod.Labels) {
			t.Errorf("%s: its selector does not select its pods", where)
		}
		sc := pod.Spec.SecurityContext
		if sc == nil || sc.RunAsNonRoot == nil || !*sc.RunAsNonRoot || sc.RunAsUser == nil || *sc.RunAsUser != imageUser {
			t.Errorf("%s: want runAsNonRoot and runAsUser %d, the image's user", where, imageUser)
		}
		if len(pod.Spec.Containers) != 1 {
			t.Fatalf("%s: %d containers, want 1", where, len(pod.Spec.Containers))
		}
		c := pod.Spec.Containers[0]
		if image == "" {
			image = c.Image
		}
		if c.Image == "" || c.Image != image {
			t.Errorf("%s: image %q: want the same image as the other Deployment (%q)", where, c.Image, image)
		}
		grace := checkCommandLine(t, where, c.Args)
		if pod.Spec.TerminationGracePeriodSeconds == nil {
			t.Errorf("%s: no terminationGracePeriodSeconds", where)
		} else {
			checkStopWait(t, where, grace, time.Duration(*pod.Spec.TerminationGracePeriodSeconds)*time.Second)
		}
		ports := map[string]bool{}
		for _, p := range c.Ports {
			ports[p.Name] = true
		}
		for kind, p := range map[string]*corev1.Probe{"liveness": c.LivenessProbe, "readiness": c.ReadinessProbe} {
			if p == nil {
				if kind == "liveness" || name == "routines-server" {
					t.Errorf("%s: no %s probe", where, kind)
				}
				continue
			}
			if p.HTTPGet == nil || !ports[p.HTTPGet.Port.StrVal] {
				t.Errorf("%s: the %s probe is not an HTTP GET on a named port of the container", where, kind)
				continue
			}
			want := map[string]string{"liveness": "/healthz", "readiness": "/readyz"}[kind]
			if p.HTTPGet.Path != want {
				t.Errorf("%s: the %s probe gets %s, want %s", where, kind, p.HTTPGet.Path, want)
			}
		}
		var env []string
		for _, e := range c.EnvFrom {
			if e.SecretRef == nil || m.secrets[e.SecretRef.Name] == nil {
				t.Errorf("%s: envFrom %+v: want a secretRef to a Secret of secret.example.yaml", where, e)
				continue
			}
			env = slices.AppendSeq(env, maps.Keys(m.secrets[e.SecretRef.Name].StringData))
		}
		for _, k := range needEnv {
			if !slices.Contains(env, k) {
				t.Errorf("%s: is given no %s", where, k)
			}
		}
		if csc := c.SecurityContext; csc == nil || csc.ReadOnlyRootFilesystem == nil || !*csc.ReadOnlyRootFilesystem ||
			csc.AllowPrivilegeEscalation == nil || *csc.AllowPrivilegeEscalation {
			t.Errorf("%s: want a read-only root file system and no privilege escalation", where)
		}
		if !slices.ContainsFunc(c.VolumeMounts, func(v corev1.VolumeMount) bool { return v.MountPath == "/var/lib/routines" }) {
			t.Errorf("%s: nothing is mounted on /var/lib/routines, the only place a read-only root leaves it to write its cache and workspaces", where)
		}
	}

	for _, s := range m.services {
		if !selects(s.Spec.Selector, server.Spec.Template.Labels) {
			t.Errorf("Service %s does not select the servers", s.Name)
		}
		for _, p := range s.Spec.Ports {
			if p.TargetPort.Type != intstr.String || !slices.ContainsFunc(server.Spec.Template.Spec.Containers[0].Ports, func(c corev1.ContainerPort) bool { return c.Name == p.TargetPort.StrVal }) {
				t.Errorf("Service %s: targetPort %s is no named port of the servers", s.Name, p.TargetPort.String())
			}
		}
	}
	guarded := map[string]bool{}
	for _, p := range m.pdbs {
		for name, d := range m.deployments {
			if p.Spec.Selector != nil && selects(p.Spec.Selector.MatchLabels, d.Spec.Template.Labels) {
				guarded[name] = true
			}
		}
	}
	if len(guarded) != 2 {
		t.Errorf("PodDisruptionBudgets guard %v, want both Deployments", slices.Sorted(maps.Keys(guarded)))
	}
	if len(m.hpas) != 1 {
		t.Fatalf("%d HorizontalPodAutoscalers, want the workers'", len(m.hpas))
	}
	h := m.hpas[0]
	if ref := h.Spec.ScaleTargetRef; ref.Kind != "Deployment" || ref.Name != worker.Name {
		t.Errorf("the HorizontalPodAutoscaler scales %s %s, want the workers", ref.Kind, ref.Name)
	}
	exported := exportedMetrics(t)
	for _, ms := range h.Spec.Metrics {
		if ms.External == nil || !exported[ms.External.Metric.Name] {
			t.Errorf("the HorizontalPodAutoscaler scales on %+v: want an external metric the servers export (%v)", ms, slices.Sorted(maps.Keys(exported)))
		}
	}
}

// countOnly is a store that answers RunCount only, which is all the
// queue's metrics ask of it.
type countOnly struct{ store.Store }

func (countOnly) RunCount(context.Context, *store.RunCountParams) (map[routine.State]int, error) {
	return map[routine.State]int{routine.StateQueued: 3}, nil
}

// exportedMetrics returns the names of the metrics a server exports
// about the queue of a deployment with one routine.
func exportedMetrics(t *testing.T) map[string]bool {
	t.Helper()
	m := metrics.New(metrics.Config{})
	m.WatchQueue(countOnly{}, func() []*routine.Routine { return []*routine.Routine{{Name: "r", Region: "eu-west"}} })
	families, err := m.Registry().Gather()
	if err != nil {
		t.Fatal(err)
	}
	names := map[string]bool{}
	for _, f := range families {
		if strings.HasPrefix(f.GetName(), "routines_") {
			names[f.GetName()] = true
		}
	}
	return names
}
