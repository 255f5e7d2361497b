//! Evaluator benchmarks over seeded, realistic clusters:
//! (a) compile 5,000 policies over 20,000 pods; (b) verdicts per second, cold and with
//! the identity-keyed cache; (c) full connectivity of 1,000 workloads.
//!
//! `cargo bench -p policyhub-netpol --bench engine`

use std::fmt::Write;
use std::hint::black_box;
use std::time::Duration;

use criterion::{criterion_group, criterion_main, BatchSize, Criterion, Throughput};
use netpol::{Bundle, Endpoint, Engine, Options, Protocol, VerdictCache};

/// A small deterministic PRNG (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }
    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

const TIERS: [(&str, u16); 6] = [
    ("frontend", 8080),
    ("backend", 9000),
    ("worker", 8081),
    ("db", 5432),
    ("cache", 6379),
    ("queue", 5672),
];

/// A cluster of `workloads` Deployments with `replicas` pods each, spread over namespaces
/// of ~10 workloads, and `policies` NetworkPolicies: default deny + DNS per namespace, then
/// same-tier, cross-namespace, ipBlock-with-except, endPort and matchExpressions rules.
fn cluster(workloads: usize, replicas: usize, policies: usize, seed: u64) -> Bundle {
    let mut rng = Rng(seed);
    let namespaces = workloads.div_ceil(10);
    let mut y = String::new();
    for n in 0..namespaces {
        let _ = writeln!(y, "---\napiVersion: v1\nkind: Namespace\nmetadata: {{name: ns{n}, labels: {{team: t{}, env: e{}}}}}", n % 12, n % 3);
    }
    for w in 0..workloads {
        let (tier, port) = TIERS[rng.below(TIERS.len())];
        for r in 0..replicas {
            let _ = writeln!(
                y,
                "---\napiVersion: v1\nkind: Pod\nmetadata: {{name: w{w}-{r}, namespace: ns{}, labels: {{app: w{w}, tier: {tier}}}, ownerReferences: [{{kind: ReplicaSet, name: w{w}, controller: true}}]}}\nspec: {{containers: [{{name: c, ports: [{{name: main, containerPort: {port}}}, {{name: metrics, containerPort: 9090}}]}}]}}\nstatus: {{podIP: 10.{}.{}.{}}}",
                w / 10,
                (w * replicas + r) / 65536,
                (w * replicas + r) / 256 % 256,
                (w * replicas + r) % 256
            );
        }
    }
    let mut count = 0;
    for n in 0..namespaces {
        if count + 2 > policies {
            break;
        }
        let _ = writeln!(y, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: default-deny, namespace: ns{n}}}\nspec: {{podSelector: {{}}, policyTypes: [Ingress, Egress]}}");
        let _ = writeln!(y, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: dns, namespace: ns{n}}}\nspec: {{podSelector: {{}}, policyTypes: [Egress], egress: [{{to: [{{namespaceSelector: {{matchLabels: {{kubernetes.io/metadata.name: ns0}}}}}}], ports: [{{port: 53, protocol: UDP}}]}}]}}");
        count += 2;
    }
    while count < policies {
        let w = rng.below(workloads);
        let n = w / 10;
        let (tier, _) = TIERS[rng.below(TIERS.len())];
        let rule = match rng.below(5) {
            0 => format!("ingress: [{{from: [{{podSelector: {{matchLabels: {{tier: {tier}}}}}}}], ports: [{{port: main}}]}}]"),
            1 => format!("ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{team: t{}}}}}}}], ports: [{{port: metrics}}]}}]", rng.below(12)),
            2 => format!("ingress: [{{from: [{{namespaceSelector: {{matchLabels: {{env: e{}}}}}, podSelector: {{matchLabels: {{app: w{}}}}}}}]}}]", rng.below(3), rng.below(workloads)),
            3 => {
                let net = rng.below(32);
                format!("egress: [{{to: [{{ipBlock: {{cidr: 172.{net}.0.0/16, except: [172.{net}.{}.0/24]}}}}], ports: [{{port: 8000, endPort: {}}}]}}]", rng.below(256), 8000 + rng.below(1000))
            }
            _ => format!("ingress: [{{from: [{{podSelector: {{matchExpressions: [{{key: tier, operator: In, values: [{tier}, backend]}}]}}}}]}}]"),
        };
        let _ = writeln!(y, "---\napiVersion: networking.k8s.io/v1\nkind: NetworkPolicy\nmetadata: {{name: p{count}, namespace: ns{n}}}\nspec:\n  podSelector: {{matchLabels: {{app: w{w}}}}}\n  {rule}");
        count += 1;
    }
    let mut bundle = Bundle::default();
    bundle
        .load_str(&y, "generated.yaml")
        .expect("generated cluster parses");
    bundle
}

fn compile(c: &mut Criterion) {
    let bundle = cluster(2_000, 10, 5_000, 1);
    assert_eq!(
        (bundle.inventory.pods.len(), bundle.policies.len()),
        (20_000, 5_000)
    );
    let mut g = c.benchmark_group("compile");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("5000_policies_20000_pods", |b| {
        b.iter_batched(
            || (bundle.inventory.clone(), bundle.policies.clone()),
            |(inv, pol)| black_box(Engine::new(inv, pol, Options::default())),
            BatchSize::PerIteration,
        )
    });
    g.finish();
}

fn verdicts(c: &mut Criterion) {
    let bundle = cluster(2_000, 10, 5_000, 1);
    let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
    let mut rng = Rng(7);
    let pods = engine.inventory().pods.len();
    let ports = [53u16, 5432, 6379, 8080, 9000, 9090];
    let flows: Vec<(Endpoint, Endpoint, u16)> = (0..4096)
        .map(|_| {
            (
                Endpoint::Pod(rng.below(pods)),
                Endpoint::Pod(rng.below(pods)),
                ports[rng.below(ports.len())],
            )
        })
        .collect();
    let mut g = c.benchmark_group("verdicts");
    g.throughput(Throughput::Elements(flows.len() as u64));
    g.bench_function("cold", |b| {
        b.iter(|| {
            for (s, d, p) in &flows {
                black_box(engine.verdict(s, d, Protocol::Tcp, *p));
            }
        })
    });
    let mut cache = VerdictCache::new(&engine);
    for (s, d, p) in &flows {
        cache.verdict(s, d, Protocol::Tcp, *p);
    }
    g.bench_function("hot_cache", |b| {
        b.iter(|| {
            for (s, d, p) in &flows {
                black_box(cache.verdict(s, d, Protocol::Tcp, *p));
            }
        })
    });
    g.finish();
    // Explained decisions are slower: measured over 256 flows.
    let mut g = c.benchmark_group("verdicts_explained");
    g.throughput(Throughput::Elements(256));
    g.bench_function("decide", |b| {
        b.iter(|| {
            for (s, d, p) in flows.iter().take(256) {
                black_box(engine.decide(s, d, Protocol::Tcp, *p));
            }
        })
    });
    g.finish();
}

fn connectivity(c: &mut Criterion) {
    let bundle = cluster(1_000, 1, 500, 3);
    let engine = Engine::new(bundle.inventory, bundle.policies, Options::default());
    let mut g = c.benchmark_group("connectivity");
    g.sample_size(10).measurement_time(Duration::from_secs(20));
    g.bench_function("1000_workloads", |b| {
        b.iter(|| {
            let mut open = 0usize;
            netpol::connectivity::analyze(
                &engine,
                |_, _| {},
                |_, _, ports| open += usize::from(!ports.is_empty()),
            );
            black_box(open)
        })
    });
    g.finish();
}

criterion_group!(benches, compile, verdicts, connectivity);
criterion_main!(benches);
