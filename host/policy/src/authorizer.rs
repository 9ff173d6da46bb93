//! The decision point: Cedar plus the decision cache and counters.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use arc_swap::ArcSwap;
use cedar_policy::{Entities, Entity, EntityUid, Request};

use crate::cache::DecisionCache;
use crate::context::{Clock, FixedContext, Node, RequestContext, SystemClock};
use crate::model::{Action, Principal, Resource, resource_entity, resource_uid};
use crate::policy_set::PolicySet;
use crate::vocabulary::{ActionInfo, MAX_ACTIONS, Vocabulary};

/// The answer to one authorization question. There is deliberately no way
/// to turn a `Decision` into a `Result` with `?`: callers must look at
/// [`Decision::allowed`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Decision {
    allowed: bool,
    reason: Arc<str>,
}

impl Decision {
    #[cfg(test)]
    pub(crate) fn allow(reason: &str) -> Self {
        Decision { allowed: true, reason: reason.into() }
    }

    pub fn allowed(&self) -> bool {
        self.allowed
    }

    /// Which policies decided, or why nothing did: for logs and audit events.
    pub fn reason(&self) -> &str {
        &self.reason
    }
}

/// Allowed/denied counts per action, for metrics.
#[derive(Debug)]
pub struct DecisionCounters {
    vocabulary: Vocabulary,
    allowed: Vec<AtomicU64>,
    denied: Vec<AtomicU64>,
}

impl DecisionCounters {
    fn new(vocabulary: &Vocabulary) -> Self {
        let zeros = || (0..vocabulary.len()).map(|_| AtomicU64::new(0)).collect();
        DecisionCounters { vocabulary: vocabulary.clone(), allowed: zeros(), denied: zeros() }
    }

    fn record(&self, index: usize, allowed: bool) {
        let counters = if allowed { &self.allowed } else { &self.denied };
        if let Some(c) = counters.get(index) {
            c.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// (allowed, denied) so far for `action`.
    pub fn get(&self, action: Action) -> (u64, u64) {
        self.vocabulary.index(action).map_or((0, 0), |i| self.at(i))
    }

    fn at(&self, index: usize) -> (u64, u64) {
        let read = |c: &[AtomicU64]| c.get(index).map_or(0, |c| c.load(Ordering::Relaxed));
        (read(&self.allowed), read(&self.denied))
    }

    /// (action, allowed, denied) for every action of the schema, by name.
    pub fn iter(&self) -> impl Iterator<Item = (&str, u64, u64)> {
        self.vocabulary.iter().enumerate().map(|(i, a)| {
            let (allowed, denied) = self.at(i);
            (a.name.as_str(), allowed, denied)
        })
    }
}

/// A principal prepared for repeated questions: its Cedar entities are
/// built once and its decisions are cached.
#[derive(Debug)]
pub struct PrincipalHandle {
    principal: Principal,
    uid: EntityUid,
    /// `uid` as text (`Arw::Caller::"local"`), made once: what tells one
    /// caller from another where the host keeps state per caller.
    key: std::sync::Arc<str>,
    /// Built once; if they cannot be built, every question is denied.
    entities: Result<Vec<Entity>, String>,
    cache: DecisionCache,
}

impl PrincipalHandle {
    pub fn principal(&self) -> &Principal {
        &self.principal
    }

    /// The principal's Cedar uid as text, e.g. `Arw::Caller::"local"`.
    pub fn key(&self) -> &std::sync::Arc<str> {
        &self.key
    }
}

/// Answers "may this principal do this action on this resource?" from the
/// current policy set. Policies can be replaced while it serves
/// ([`Authorizer::replace_policies`]); every cached decision made under the
/// old set is invalidated at once.
#[derive(Debug)]
pub struct Authorizer {
    schema: cedar_policy::Schema,
    policies: ArcSwap<PolicySet>,
    /// The cache's generation (high bits) and which actions are never
    /// cached under it (low [`ACTION_BITS`] bits, by [`Action`] index), read
    /// together in one load. A decision is cached under a generation only
    /// when the policies that made it are that generation's.
    state: AtomicU64,
    /// Serialises policy replacements, so generations and sets pair up.
    replacing: parking_lot::Mutex<()>,
    cedar: cedar_policy::Authorizer,
    counters: DecisionCounters,
    /// The schema's actions: what each applies to, and its index in the
    /// caches, the counters and the state word.
    vocabulary: Vocabulary,
    /// The schema's action entities, so `action in Arw::Action::"admin"`
    /// sees the action groups.
    action_entities: Vec<Entity>,
    /// The node's part of every request's context.
    fixed: FixedContext,
    /// Where `context.now` comes from.
    clock: Arc<dyn Clock>,
}

impl Authorizer {
    /// An authorizer for `schema`'s actions. A schema whose actions cannot
    /// be read ([`Vocabulary::of`]: the host checks this when it assembles
    /// its schema) leaves an authorizer that denies everything.
    pub fn new(schema: cedar_policy::Schema, mut policies: PolicySet) -> Self {
        let action_entities = schema.action_entities().map(|e| e.iter().cloned().collect()).unwrap_or_default();
        let vocabulary = Vocabulary::of(&schema).unwrap_or_else(|e| {
            tracing::error!("every request will be denied: {e}");
            Vocabulary::empty()
        });
        policies.generation = 1;
        let state = AtomicU64::new(pack(&policies, &vocabulary));
        Authorizer {
            counters: DecisionCounters::new(&vocabulary),
            vocabulary,
            action_entities,
            schema,
            policies: ArcSwap::from_pointee(policies),
            state,
            replacing: parking_lot::Mutex::new(()),
            cedar: cedar_policy::Authorizer::new(),
            fixed: FixedContext::new(&Node::default()),
            clock: Arc::new(SystemClock),
        }
    }

    /// This host as policies see it (`context.node_id`, `node_role`,
    /// `node_tags`); fixed for the authorizer's life.
    pub fn with_node(mut self, node: &Node) -> Self {
        self.fixed = FixedContext::new(node);
        self
    }

    /// Take `context.now` from `clock` (tests inject one).
    pub fn with_clock(mut self, clock: Arc<dyn Clock>) -> Self {
        self.clock = clock;
        self
    }

    pub fn schema(&self) -> &cedar_policy::Schema {
        &self.schema
    }

    /// The schema's actions.
    pub fn vocabulary(&self) -> &Vocabulary {
        &self.vocabulary
    }

    /// The policy set in force now.
    pub fn policies(&self) -> Arc<PolicySet> {
        self.policies.load_full()
    }

    /// Swap in a new (already validated) policy set and invalidate every
    /// cached decision. The next question is answered by the new set.
    pub fn replace_policies(&self, mut policies: PolicySet) {
        let _one_at_a_time = self.replacing.lock();
        policies.generation = (self.state.load(Ordering::Acquire) >> ACTION_BITS) + 1;
        let state = pack(&policies, &self.vocabulary);
        self.policies.store(Arc::new(policies));
        self.state.store(state, Ordering::Release);
    }

    /// Forget every cached decision (the invalidation hook for anything that
    /// changes what a decision depends on): the same policies, a new
    /// generation.
    pub fn invalidate(&self) {
        self.replace_policies(PolicySet::clone(&self.policies.load()));
    }

    pub fn counters(&self) -> &DecisionCounters {
        &self.counters
    }

    /// Prepare `principal` for questions.
    pub fn principal(&self, principal: Principal) -> PrincipalHandle {
        PrincipalHandle {
            uid: principal.uid(),
            key: principal.cedar_uid().into(),
            entities: principal.entities(),
            cache: DecisionCache::new(self.state.load(Ordering::Acquire) >> ACTION_BITS, self.vocabulary.len()),
            principal,
        }
    }

    /// May `who` do `action` on the resource called `resource`? For
    /// [`Action::TOOL_INVOKE`] use [`Authorizer::decide_tool`], which also
    /// tells Cedar which component provides the tool.
    pub fn decide(&self, who: &PrincipalHandle, action: Action, resource: &str) -> Decision {
        self.decide_resource(who, action, Resource::named(resource))
    }

    /// May `who` invoke the tool `tool` provided by component `component`?
    pub fn decide_tool(&self, who: &PrincipalHandle, tool: &str, component: &str) -> Decision {
        self.decide_resource(who, Action::TOOL_INVOKE, Resource::tool(tool, component))
    }

    /// May `who` do `action` on `resource`, with no request context (no
    /// HTTP route, no client, no chain)? See [`Authorizer::decide_in`].
    pub fn decide_resource(&self, who: &PrincipalHandle, action: Action, resource: Resource<'_>) -> Decision {
        self.decide_in(who, action, resource, &RequestContext::default())
    }

    /// May `who` do `action` on `resource` in `context`? Cached per
    /// principal, keyed by everything Cedar is shown of the resource (see
    /// [`Resource`]), unless a policy that can apply to `action` reads a
    /// per-request input of the context (the time, the route, the client,
    /// the chain): then it is evaluated every time.
    pub fn decide_in(
        &self,
        who: &PrincipalHandle,
        action: Action,
        resource: Resource<'_>,
        context: &RequestContext<'_>,
    ) -> Decision {
        let Some(index) = self.vocabulary.index(action) else { return unknown(action) };
        let (generation, uncached) = unpack(self.state.load(Ordering::Acquire), index);
        let decision = match (!uncached).then(|| who.cache.get(generation, index, resource)).flatten() {
            Some(hit) => hit,
            None => {
                let policies = self.policies.load();
                let decision = match self.vocabulary.at(index) {
                    Some(info) => self.evaluate(&policies, who, info, resource, context),
                    None => unknown(action),
                };
                // Only what this generation's policies decided, and only if
                // they read nothing that changes per request.
                if policies.generation == generation && !policies.reads.per_request(action.as_str()) {
                    who.cache.put(generation, index, resource, decision.clone());
                }
                decision
            }
        };
        self.counters.record(index, decision.allowed);
        decision
    }

    /// The cached decision, if there is one under the current policies;
    /// never evaluates (and so never answers for an action whose policies
    /// read per-request context). Lets callers that run where Cedar must
    /// not (on a guest's fiber stack, where Cedar's stack-depth check
    /// misfires) take the fast path inline and evaluate elsewhere on a miss.
    pub fn cached(&self, who: &PrincipalHandle, action: Action, resource: Resource<'_>) -> Option<Decision> {
        let index = self.vocabulary.index(action)?;
        let (generation, uncached) = unpack(self.state.load(Ordering::Acquire), index);
        if uncached {
            return None;
        }
        let hit = who.cache.get(generation, index, resource)?;
        self.counters.record(index, hit.allowed);
        Some(hit)
    }

    /// Evaluate without the cache (for benchmarks and diagnostics).
    pub fn decide_uncached(&self, who: &PrincipalHandle, action: Action, resource: &str) -> Decision {
        match self.vocabulary.get(action.as_str()) {
            Some(info) => {
                self.evaluate(&self.policies.load(), who, info, Resource::named(resource), &RequestContext::default())
            }
            None => unknown(action),
        }
    }

    /// Ask Cedar. Every failure on the way (a malformed request or context,
    /// entities that cannot be built, an evaluation error in any policy) is
    /// a denial, never an allow.
    fn evaluate(
        &self,
        policies: &PolicySet,
        who: &PrincipalHandle,
        action: &ActionInfo,
        resource: Resource<'_>,
        context: &RequestContext<'_>,
    ) -> Decision {
        let principal_entities = match &who.entities {
            Ok(entities) => entities,
            Err(e) => return deny(format!("malformed principal: {e}")),
        };
        let resource_entity = match resource_entity(&action.resource_type, resource) {
            Ok(entity) => entity,
            Err(e) => return deny(format!("malformed resource: {e}")),
        };
        let context = match self.fixed.with(context, self.clock.now(), policies.reads.read(&action.name)) {
            Ok(context) => context,
            Err(e) => return deny(format!("malformed context: {e}")),
        };
        // Not checked against the schema per request (that doubled the cost
        // of an evaluation): the context's shape is fixed, and a test checks
        // it against `Arw::RequestContext` for every action.
        let request = match Request::new(
            who.uid.clone(),
            action.uid.clone(),
            resource_uid(&action.resource_type, resource.name),
            context,
            None,
        ) {
            Ok(r) => r,
            Err(e) => return deny(format!("malformed request: {e}")),
        };
        // Only actions in a group (the admin actions) need the action
        // entities; the others skip their (small) cost.
        let actions = if action.grouped { &self.action_entities[..] } else { &[] };
        let entities =
            principal_entities.iter().cloned().chain(std::iter::once(resource_entity)).chain(actions.iter().cloned());
        let entities = match Entities::from_entities(entities, None) {
            Ok(e) => e,
            Err(e) => return deny(format!("malformed entities: {e}")),
        };
        let response = self.cedar.is_authorized(&request, &policies.set, &entities);
        let diagnostics = response.diagnostics();
        let deciders: Vec<String> = diagnostics.reason().map(ToString::to_string).collect();
        let errors: Vec<String> = diagnostics.errors().map(ToString::to_string).collect();
        match response.decision() {
            // Cedar skips a policy whose condition fails to evaluate: for a
            // `forbid`, that would turn an error into an allow. Any error
            // at all makes the answer a denial.
            cedar_policy::Decision::Allow if !errors.is_empty() => deny(format!(
                "evaluation errors in the policies, so denied although {} permit it: {}",
                deciders.join(", "),
                errors.join("; ")
            )),
            cedar_policy::Decision::Allow => {
                Decision { allowed: true, reason: format!("permitted by {}", deciders.join(", ")).into() }
            }
            cedar_policy::Decision::Deny if !deciders.is_empty() => {
                deny(format!("forbidden by {}", deciders.join(", ")))
            }
            cedar_policy::Decision::Deny if !errors.is_empty() => {
                deny(format!("no policy permits it (evaluation errors: {})", errors.join("; ")))
            }
            cedar_policy::Decision::Deny => deny("no policy permits it".to_string()),
        }
    }
}

/// Low bits of [`Authorizer::state`]: one per action.
const ACTION_BITS: u32 = 32;
const _: () = assert!(MAX_ACTIONS <= ACTION_BITS as usize);

/// The state word for `policies`: their generation and uncached actions.
fn pack(policies: &PolicySet, vocabulary: &Vocabulary) -> u64 {
    let mask = vocabulary
        .iter()
        .enumerate()
        .filter(|(_, a)| policies.reads.per_request(&a.name))
        .fold(0u64, |mask, (i, _)| mask | (1 << i));
    (policies.generation << ACTION_BITS) | mask
}

/// (generation, is the action at `index` uncached) from a state word.
fn unpack(state: u64, index: usize) -> (u64, bool) {
    (state >> ACTION_BITS, index >= ACTION_BITS as usize || state & (1 << index) != 0)
}

/// The answer about an action the schema does not declare.
fn unknown(action: Action) -> Decision {
    deny(format!("`{action}` is not an action of this host's schema"))
}

fn deny(reason: String) -> Decision {
    Decision { allowed: false, reason: reason.into() }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::PolicySource;

    fn authorizer(policies: &str) -> Authorizer {
        let schema = crate::schema::embedded().unwrap_or_else(|e| panic!("{e}"));
        let set = PolicySet::from_sources(&schema, [PolicySource::new("t.cedar", policies)])
            .unwrap_or_else(|e| panic!("{e}"));
        Authorizer::new(schema, set)
    }

    fn component(id: &str) -> Principal {
        Principal::component(id, "1.0.0", "arw", "sha256:00")
    }

    #[test]
    fn no_policy_means_no_grant() {
        let a = authorizer("");
        let who = a.principal(component("arw:x"));
        assert!(a.vocabulary().len() > Action::CORE.len(), "the capabilities' actions too");
        for info in a.vocabulary().iter() {
            let action = Action::new(Box::leak(info.name.clone().into_boxed_str()));
            let d = a.decide(&who, action, "anything");
            assert!(!d.allowed(), "{action} allowed with no policies");
            assert_eq!(d.reason(), "no policy permits it");
        }
    }

    #[test]
    fn the_admin_group_grants_every_admin_action() {
        let a = authorizer(
            r#"@id("ops") permit(principal in Arw::Role::"admin", action in Arw::Action::"admin", resource);"#,
        );
        let admin = a.principal(Principal::caller("ci", ["admin"]));
        let anonymous = a.principal(Principal::caller("anonymous", ["anonymous"]));
        for action in Action::CORE.into_iter().filter(|a| a.as_str().starts_with("admin.")) {
            assert!(a.decide(&admin, action, "admin:x").allowed(), "{action}");
            assert!(!a.decide(&anonymous, action, "admin:x").allowed(), "{action}");
        }
        assert!(!a.decide(&admin, Action::TOOL_INVOKE, "text-stats").allowed());
    }

    #[test]
    fn patterns_on_resource_names() {
        let a = authorizer(
            r#"@id("p") permit(principal == Arw::Component::"arw:a", action == Arw::Action::"bus.publish", resource) when { resource.name like "demo.*" };"#,
        );
        let who = a.principal(component("arw:a"));
        let other = a.principal(component("arw:b"));
        assert!(a.decide(&who, Action::new("bus.publish"), "demo.x").allowed());
        assert_eq!(a.decide(&who, Action::new("bus.publish"), "demo.x").reason(), "permitted by t.cedar#p");
        assert!(!a.decide(&who, Action::new("bus.publish"), "billing.x").allowed());
        assert!(!a.decide(&who, Action::new("bus.subscribe"), "demo.x").allowed());
        assert!(!a.decide(&other, Action::new("bus.publish"), "demo.x").allowed());
    }

    #[test]
    fn forbid_wins_and_is_named() {
        let a = authorizer(
            r#"permit(principal, action, resource);
               @id("no-billing") forbid(principal, action, resource) when { resource has name && resource.name like "billing.*" };"#,
        );
        let who = a.principal(component("arw:a"));
        let d = a.decide(&who, Action::new("bus.publish"), "billing.x");
        assert!(!d.allowed());
        assert_eq!(d.reason(), "forbidden by t.cedar#no-billing");
    }

    #[test]
    fn callers_get_permissions_through_roles() {
        let a = authorizer(
            r#"permit(principal in Arw::Role::"operator", action == Arw::Action::"tool.invoke", resource);
               permit(principal, action == Arw::Action::"tool.invoke", resource) when { resource.component == "arw:text-stats" };"#,
        );
        let operator = a.principal(Principal::local_operator());
        let anonymous = a.principal(Principal::caller("anonymous", ["anonymous"]));
        assert!(a.decide_tool(&operator, "kv-counter", "arw:kv-counter").allowed());
        assert!(!a.decide_tool(&anonymous, "kv-counter", "arw:kv-counter").allowed());
        assert!(a.decide_tool(&anonymous, "text-stats", "arw:text-stats").allowed());
    }

    #[test]
    fn a_decision_about_a_tool_is_never_reused_for_another_provider() {
        let a = authorizer(
            r#"permit(principal, action == Arw::Action::"tool.invoke", resource) when { resource.component == "arw:text-stats" };"#,
        );
        let anonymous = a.principal(Principal::caller("anonymous", ["anonymous"]));
        assert!(a.decide_tool(&anonymous, "text-stats", "arw:text-stats").allowed());
        // The same caller handle, the same tool name, another component:
        // asked afresh (a cache keyed by the name alone would allow it).
        let d = a.decide_tool(&anonymous, "text-stats", "evil:text-stats");
        assert!(!d.allowed(), "{}", d.reason());
        assert!(a.decide_tool(&anonymous, "text-stats", "arw:text-stats").allowed());
        assert_eq!(a.counters().get(Action::TOOL_INVOKE), (2, 1));
    }

    /// Hardening #7: an allow that carries evaluation errors is a deny.
    #[test]
    fn an_evaluation_error_in_a_forbid_denies() {
        // Passes strict validation; overflows at evaluation. Cedar skips a
        // policy that errors, so without ARW's rule the permit would win.
        let a = authorizer(
            r#"@id("everything") permit(principal, action, resource);
               @id("overflowing") forbid(principal, action, resource) when { 9223372036854775807 + 1 > 0 };"#,
        );
        let who = a.principal(component("arw:a"));
        let d = a.decide(&who, Action::new("kv.read"), "ns");
        assert!(!d.allowed(), "an error inside a forbid must not allow: {}", d.reason());
        assert!(d.reason().contains("evaluation errors"), "{}", d.reason());
        assert!(d.reason().contains("overflowing"), "{}", d.reason());
        // An error in a permit alone is simply no permit.
        let a = authorizer(r#"@id("p") permit(principal, action, resource) when { 9223372036854775807 + 1 > 0 };"#);
        assert!(!a.decide(&a.principal(component("arw:a")), Action::new("kv.read"), "ns").allowed());
    }

    #[test]
    fn replacing_policies_invalidates_cached_decisions() {
        let a = authorizer(r#"permit(principal, action == Arw::Action::"kv.read", resource);"#);
        let who = a.principal(component("arw:a"));
        assert!(a.decide(&who, Action::new("kv.read"), "ns").allowed());
        assert!(a.decide(&who, Action::new("kv.read"), "ns").allowed(), "cached");
        a.replace_policies(PolicySet::empty());
        assert!(!a.decide(&who, Action::new("kv.read"), "ns").allowed(), "revocation must apply at once");
        assert_eq!(a.counters().get(Action::new("kv.read")), (2, 1));
    }

    /// A clock the test moves.
    #[derive(Debug)]
    struct TestClock(parking_lot::Mutex<std::time::SystemTime>);

    impl Clock for TestClock {
        fn now(&self) -> std::time::SystemTime {
            *self.0.lock()
        }
    }

    fn at(rfc3339: &str) -> std::time::SystemTime {
        let t = chrono::DateTime::parse_from_rfc3339(rfc3339).unwrap_or_else(|e| panic!("{e}"));
        std::time::SystemTime::from(t)
    }

    /// Issue 11 #5: a time-window policy flips at its boundary for the same
    /// caller handle (a cached decision would keep the old answer).
    #[test]
    fn a_time_window_flips_at_its_boundary() {
        let clock = Arc::new(TestClock(parking_lot::Mutex::new(at("2026-12-24T11:59:59.999Z"))));
        let a = authorizer(
            r#"@id("until-noon") permit(principal, action == Arw::Action::"tool.invoke", resource)
               when { context.now < datetime("2026-12-24T12:00:00Z") };"#,
        )
        .with_clock(clock.clone());
        let anonymous = a.principal(Principal::caller("anonymous", ["anonymous"]));
        let d = a.decide_tool(&anonymous, "text-stats", "arw:text-stats");
        assert!(d.allowed(), "{}", d.reason());
        assert!(a.decide_tool(&anonymous, "text-stats", "arw:text-stats").allowed());
        *clock.0.lock() = at("2026-12-24T12:00:00Z");
        let d = a.decide_tool(&anonymous, "text-stats", "arw:text-stats");
        assert!(!d.allowed(), "the window closed at noon: {}", d.reason());
        assert_eq!(anonymous.cache.len(), 0, "decisions that read the time are never cached");
        assert_eq!(a.counters().get(Action::TOOL_INVOKE), (2, 1));
    }

    #[test]
    fn an_apply_context_is_seen_and_never_cached() {
        let a = authorizer(
            r#"permit(principal, action == Arw::Action::"feedback.apply", resource)
               when { context has apply && context.apply.source == "engine" && context.apply.confidence >= 80
                      && resource.owner == "arw:text-stats" };"#,
        );
        let engine = a.principal(Principal::caller("arw:feedback", ["feedback-engine"]));
        let knob = Resource::tool("component.arw:text-stats.timeout-ms", "arw:text-stats");
        let apply = |confidence| crate::ApplyContext {
            confidence,
            mode: "auto".into(),
            source: "engine".into(),
            budget_left: 1,
        };
        let (sure, unsure) = (apply(90), apply(50));
        let with = |apply| RequestContext { apply: Some(apply), ..Default::default() };
        assert!(a.decide_in(&engine, Action::FEEDBACK_APPLY, knob, &with(&sure)).allowed());
        assert!(!a.decide_in(&engine, Action::FEEDBACK_APPLY, knob, &with(&unsure)).allowed(), "under 80%");
        assert!(
            !a.decide_in(&engine, Action::FEEDBACK_APPLY, knob, &RequestContext::default()).allowed(),
            "no apply context"
        );
        let other = Resource::tool("component.arw:kv-counter.timeout-ms", "arw:kv-counter");
        assert!(
            !a.decide_in(&engine, Action::FEEDBACK_APPLY, other, &with(&sure)).allowed(),
            "the knob's owner is seen"
        );
        assert_eq!(engine.cache.len(), 0, "decisions that read context.apply are never cached");
    }

    #[test]
    fn the_client_address_and_gating_key_are_seen_and_never_cached() {
        let a = authorizer(
            r#"permit(principal, action == Arw::Action::"tool.invoke", resource)
               when { context has client_address && context.client_address.isInRange(ip("10.0.0.0/8"))
                      && context has gating_key && context.gating_key == "tools:invoke" };"#,
        );
        let anonymous = a.principal(Principal::caller("anonymous", ["anonymous"]));
        let tool = Resource::tool("text-stats", "arw:text-stats");
        let from = |address: &str, key| RequestContext {
            client_address: Some(address.parse().unwrap_or_else(|e| panic!("{e}"))),
            gating_key: Some(key),
            ..Default::default()
        };
        assert!(a.decide_in(&anonymous, Action::TOOL_INVOKE, tool, &from("10.1.2.3", "tools:invoke")).allowed());
        assert!(!a.decide_in(&anonymous, Action::TOOL_INVOKE, tool, &from("192.168.1.1", "tools:invoke")).allowed());
        assert!(!a.decide_in(&anonymous, Action::TOOL_INVOKE, tool, &from("10.1.2.3", "mcp:tools-call")).allowed());
        assert!(!a.decide_in(&anonymous, Action::TOOL_INVOKE, tool, &RequestContext::default()).allowed());
        assert!(a.cached(&anonymous, Action::TOOL_INVOKE, tool).is_none());
    }

    #[test]
    fn the_node_and_the_chain_are_seen() {
        let a = authorizer(
            r#"permit(principal, action == Arw::Action::"kv.read", resource)
               when { context.node_role == "edge" && context.node_tags.contains("lab") && context.node_id == "n1" };
               forbid(principal, action == Arw::Action::"kv.read", resource) when { context.depth > 1 || context.chain.contains("evil:x") };"#,
        )
        .with_node(&Node { id: "n1".into(), role: "edge".into(), tags: vec!["lab".into()] });
        let who = a.principal(component("arw:a"));
        let chain: Vec<Arc<str>> = vec!["evil:x".into()];
        let via = RequestContext { chain: &chain, ..RequestContext::default() };
        assert!(a.decide(&who, Action::new("kv.read"), "ns").allowed());
        assert!(!a.decide_in(&who, Action::new("kv.read"), Resource::named("ns"), &via).allowed());
        let other = authorizer(
            r#"permit(principal, action == Arw::Action::"kv.read", resource) when { context.node_role == "edge" };"#,
        );
        assert!(!other.decide(&other.principal(component("arw:a")), Action::new("kv.read"), "ns").allowed());
    }

    #[test]
    fn only_actions_whose_policies_read_request_context_skip_the_cache() {
        let a = authorizer(
            r#"permit(principal, action == Arw::Action::"kv.read", resource);
               permit(principal, action in [Arw::Action::"kv.write"], resource) when { context.now > datetime("2000-01-01") };
               permit(principal in Arw::Role::"admin", action in Arw::Action::"admin", resource) when { context has client_address };
               permit(principal, action == Arw::Action::"log.write", resource) when { context.node_role == "" };"#,
        );
        let who = a.principal(component("arw:a"));
        assert!(a.decide(&who, Action::new("kv.read"), "ns").allowed());
        assert!(a.cached(&who, Action::new("kv.read"), Resource::named("ns")).is_some(), "no context read: cached");
        assert!(a.decide(&who, Action::new("log.write"), "info").allowed());
        assert!(
            a.cached(&who, Action::new("log.write"), Resource::named("info")).is_some(),
            "the node is fixed: cached"
        );
        assert!(a.decide(&who, Action::new("kv.write"), "ns").allowed());
        assert!(a.cached(&who, Action::new("kv.write"), Resource::named("ns")).is_none(), "reads the time");
        assert_eq!(a.policies().context_reads(Action::new("kv.write")), ["now"]);
        assert_eq!(a.policies().context_reads(Action::ADMIN_STATUS), ["client_address"]);
        assert!(a.policies().context_reads(Action::new("kv.read")).is_empty());
        let admin = a.principal(Principal::caller("ci", ["admin"]));
        assert!(!a.decide(&admin, Action::ADMIN_STATUS, "admin:status").allowed());
        assert!(a.cached(&admin, Action::ADMIN_STATUS, Resource::named("admin:status")).is_none(), "group member");
    }

    /// The context the host builds matches `Arw::RequestContext` for every
    /// action, with and without the optional attributes.
    #[test]
    fn the_built_context_matches_the_schema() {
        let a = authorizer("");
        let chain: Vec<Arc<str>> = vec!["arw:a".into()];
        let apply =
            crate::ApplyContext { confidence: 90, mode: "auto".into(), source: "engine".into(), budget_left: 3 };
        let full = RequestContext {
            gating_key: Some("tools:invoke"),
            client_address: Some(std::net::IpAddr::from([10, 0, 0, 1])),
            chain: &chain,
            apply: Some(&apply),
        };
        for context in [RequestContext::default(), full] {
            for action in a.vocabulary().iter() {
                let built = a.fixed.with(&context, a.clock.now(), u16::MAX).unwrap_or_else(|e| panic!("{e}"));
                let principal = if action.for_components { component("arw:a") } else { Principal::local_operator() };
                let request = Request::new(
                    principal.uid(),
                    action.uid.clone(),
                    resource_uid(&action.resource_type, "x"),
                    built,
                    Some(a.schema()),
                );
                assert!(request.is_ok(), "{}: {:?}", action.name, request.err());
            }
        }
    }
}
