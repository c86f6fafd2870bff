//! The workflow graph composed from a [`WorkflowSpec`]: one node per task and engine command,
//! one edge per (task, target, transition) with the transition's condition.
//!
//! Edge keys count the edges between the same two nodes (0, 1, ...); the transition id of an
//! edge is `"<target>__t<key>"` and a back reference from the target is `"<source>__t<key>"`.
//! Outgoing edges are ordered by target name. A task is a *split* task when it is not a join
//! and more than one transition leads to it; split tasks outside cycles open new routes.

use std::collections::{BTreeSet, HashMap};

use crate::spec::{ENGINE_COMMANDS, Join, RetrySpec, WorkflowSpec};

/// One transition edge.
#[derive(Debug, Clone, PartialEq)]
pub struct Edge {
    /// Source node index.
    pub source: usize,
    /// Target node index.
    pub target: usize,
    /// Key among the edges between the same two nodes.
    pub key: usize,
    /// The `when` condition, if any.
    pub when: Option<String>,
    /// Index of the transition in the source task's `next`.
    pub transition: usize,
    /// `"<target>__t<key>"`.
    pub id: String,
    /// `"<source>__t<key>"`.
    pub backref: String,
}

/// One node: a task or an engine command.
#[derive(Debug, Clone, PartialEq)]
pub struct GraphNode {
    /// Task name.
    pub name: String,
    /// Join requirement.
    pub barrier: Option<Join>,
    /// More than one transition leads here and it is not a join.
    pub split: bool,
    /// The node can reach itself.
    pub in_cycle: bool,
    /// Retry from `retry:` or `do: retry`.
    pub retry: Option<RetrySpec>,
    /// Outgoing edge indexes, ordered by target name then key.
    pub outgoing: Vec<usize>,
    /// Incoming edge indexes.
    pub incoming: Vec<usize>,
    /// Index of the task in the spec (`None` for engine commands).
    pub task: Option<usize>,
}

/// The composed graph.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkflowGraph {
    /// Nodes.
    pub nodes: Vec<GraphNode>,
    /// Edges.
    pub edges: Vec<Edge>,
    /// Start nodes, sorted by name.
    pub roots: Vec<usize>,
    index: HashMap<String, usize>,
}

impl WorkflowGraph {
    /// Compose the graph of `spec` (which should have passed inspection; undefined targets
    /// become nodes without a task).
    pub fn compose(spec: &WorkflowSpec) -> WorkflowGraph {
        let mut g = WorkflowGraph {
            nodes: Vec::new(),
            edges: Vec::new(),
            roots: Vec::new(),
            index: HashMap::new(),
        };
        for (i, task) in spec.tasks.iter().enumerate() {
            let n = g.node(&task.name);
            g.nodes[n].task = Some(i);
            g.nodes[n].barrier = task.join;
            g.nodes[n].retry = task.retry.clone();
        }
        // Count inbound transitions (with repeats) for split detection.
        let mut inbound: HashMap<&str, usize> = HashMap::new();
        for task in &spec.tasks {
            let source = g.index[&task.name];
            // (target, when, transition) sorted by target name, stable.
            let mut next: Vec<(&str, Option<&String>, usize)> = Vec::new();
            for (ti, t) in task.next.iter().enumerate() {
                for target in &t.targets {
                    next.push((target.as_str(), t.when.as_ref(), ti));
                }
            }
            next.sort_by(|a, b| a.0.cmp(b.0));
            for (target, when, ti) in next {
                *inbound.entry(target).or_default() += 1;
                if target == "retry" {
                    g.nodes[source].retry = Some(RetrySpec {
                        when: Some(
                            when.cloned()
                                .unwrap_or_else(|| "<% completed() %>".to_owned()),
                        ),
                        count: 3.into(),
                        delay: None,
                    });
                    continue;
                }
                let target_node = g.node(target);
                let exists = g.edges.iter().any(|e| {
                    e.source == source
                        && e.target == target_node
                        && e.when.as_ref() == when
                        && e.transition == ti
                });
                if exists {
                    continue;
                }
                let key = g
                    .edges
                    .iter()
                    .filter(|e| e.source == source && e.target == target_node)
                    .count();
                let idx = g.edges.len();
                g.edges.push(Edge {
                    source,
                    target: target_node,
                    key,
                    when: when.cloned(),
                    transition: ti,
                    id: format!("{target}__t{key}"),
                    backref: format!("{}__t{key}", task.name),
                });
                g.nodes[source].outgoing.push(idx);
                g.nodes[target_node].incoming.push(idx);
            }
        }
        for n in 0..g.nodes.len() {
            let name = g.nodes[n].name.clone();
            g.nodes[n].split = g.nodes[n].barrier.is_none()
                && inbound.get(name.as_str()).copied().unwrap_or(0) > 1;
            g.nodes[n].in_cycle = g.reaches(n, n);
            let edges = &g.edges;
            let nodes = &g.nodes;
            let mut out = nodes[n].outgoing.clone();
            out.sort_by(|&a, &b| {
                nodes[edges[a].target]
                    .name
                    .cmp(&nodes[edges[b].target].name)
                    .then(edges[a].key.cmp(&edges[b].key))
            });
            g.nodes[n].outgoing = out;
        }
        let mut roots: Vec<usize> = (0..g.nodes.len())
            .filter(|&n| g.nodes[n].incoming.is_empty() && g.nodes[n].task.is_some())
            .collect();
        roots.sort_by(|&a, &b| g.nodes[a].name.cmp(&g.nodes[b].name));
        g.roots = roots;
        g
    }

    fn node(&mut self, name: &str) -> usize {
        if let Some(&i) = self.index.get(name) {
            return i;
        }
        let i = self.nodes.len();
        self.nodes.push(GraphNode {
            name: name.to_owned(),
            barrier: None,
            split: false,
            in_cycle: false,
            retry: None,
            outgoing: Vec::new(),
            incoming: Vec::new(),
            task: None,
        });
        self.index.insert(name.to_owned(), i);
        i
    }

    /// True when `to` can be reached from `from` over at least one edge.
    fn reaches(&self, from: usize, to: usize) -> bool {
        let mut seen = BTreeSet::new();
        let mut todo: Vec<usize> = self.nodes[from]
            .outgoing
            .iter()
            .map(|&e| self.edges[e].target)
            .collect();
        while let Some(n) = todo.pop() {
            if n == to {
                return true;
            }
            if seen.insert(n) {
                todo.extend(self.nodes[n].outgoing.iter().map(|&e| self.edges[e].target));
            }
        }
        false
    }

    /// The node named `name`.
    pub fn find(&self, name: &str) -> Option<usize> {
        self.index.get(name).copied()
    }

    /// True for engine commands (`continue`, `fail`, `noop`).
    pub fn is_command(&self, node: usize) -> bool {
        self.nodes[node].task.is_none() && ENGINE_COMMANDS.contains(&self.nodes[node].name.as_str())
    }

    /// The distinct predecessor nodes of `node`, in first-edge order.
    pub fn predecessors(&self, node: usize) -> Vec<usize> {
        let mut out = Vec::new();
        for &e in &self.nodes[node].incoming {
            let s = self.edges[e].source;
            if !out.contains(&s) {
                out.push(s);
            }
        }
        out
    }
}
