# Tracing and metrics for collectors:
#   - a run takes its W3C trace id from options.traceparent (or gets one);
#     every HTTP request of the run carries a traceparent header with that
#     trace id and the step's span id, the same span id trace(run_id) gives
#     the step;
#   - trace(run_id) is OpenTelemetry-shaped: resourceSpans -> scopeSpans ->
#     spans, the run's span under the caller's parent span, the steps'
#     spans under the run's, times in Unix nanoseconds, status, attributes
#     (model, tokens); another role gets NULL;
#   - an invalid traceparent is refused;
#   - metrics_prometheus() is metrics() in Prometheus' text format;
#   - the audit log records who did what (RLS: a role sees its own rows).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('simple.json');
my $node = llm_start(llm_node('trace'));
register_model($node, 'default', 'openai', $mock, { model => 'mock-trace' });
sql($node, q{CREATE ROLE mallory LOGIN; GRANT USAGE ON SCHEMA agentorch TO mallory;});

my $tp = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01';
my $run = sql($node, "SELECT agentorch.start('{\"prompt\": \"What is tracing?\"}', 'simple', NULL, '{\"model\": \"default\", \"traceparent\": \"$tp\"}')");
is(wait_status($node, $run), 'succeeded', 'the run succeeded');
is(run_field($node, $run, 'trace_id'), '4bf92f3577b34da6a3ce929d0e0e4736', 'the trace id comes from options.traceparent');

my $trace = jdec(sql($node, "SELECT agentorch.trace($run)"));
my $spans = $trace->{resourceSpans}[0]{scopeSpans}[0]{spans};
is(scalar @$spans, 2, 'trace: a span for the run and one for its step');
my ($run_span, $step_span) = @$spans;
is($run_span->{traceId}, '4bf92f3577b34da6a3ce929d0e0e4736', 'trace: the run span carries the trace id');
is($run_span->{parentSpanId}, '00f067aa0ba902b7', 'trace: the run span is a child of the caller\'s span');
is($step_span->{parentSpanId}, $run_span->{spanId}, 'trace: the step span is a child of the run span');
is($step_span->{name}, 'main', 'trace: the step span is named after the step');
is($step_span->{kind}, 3, 'trace: an llm step is a client span');
is($step_span->{status}{code}, 1, 'trace: status ok');
like($step_span->{startTimeUnixNano}, qr/^\d{19}$/, 'trace: times in Unix nanoseconds');
cmp_ok($step_span->{endTimeUnixNano}, '>=', $step_span->{startTimeUnixNano}, 'trace: the span ends after it starts');
my %attr = map { $_->{key} => $_->{value} } @{ $step_span->{attributes} };
is($attr{'gen_ai.request.model'}{stringValue}, 'default', 'trace: the model is an attribute');
ok(defined $attr{'gen_ai.usage.output_tokens'}{intValue}, 'trace: tokens are attributes');
is_deeply($trace->{resourceSpans}[0]{resource}{attributes}, [ { key => 'service.name', value => { stringValue => 'agentorch' } } ],
	'trace: service.name agentorch');

my ($req) = grep { ($_->{body}{messages}[-1]{content} // '') eq 'What is tracing?' } @{ mock_requests($mock) };
is($req->{headers}{traceparent}, "00-4bf92f3577b34da6a3ce929d0e0e4736-$step_span->{spanId}-01",
	'the request carried the run\'s trace id and the step\'s span id');

# without a traceparent, a trace id is generated and still propagated
my $run2 = sql($node, q{SELECT agentorch.start('{"prompt": "What is a span?"}', 'simple', NULL, '{"model": "default"}')});
is(wait_status($node, $run2), 'succeeded', 'a second run succeeded');
my $tid = run_field($node, $run2, 'trace_id');
like($tid, qr/^[0-9a-f]{32}$/, 'a trace id is generated');
($req) = grep { ($_->{body}{messages}[-1]{content} // '') eq 'What is a span?' } @{ mock_requests($mock) };
like($req->{headers}{traceparent}, qr/^00-$tid-[0-9a-f]{16}-01$/, 'and propagated');

# run_sync propagates it too
sql($node, q{SELECT count(*) FROM agentorch.run_sync('{"prompt": "What is sync tracing?"}', '{"model": "default"}')});
($req) = grep { ($_->{body}{messages}[-1]{content} // '') eq 'What is sync tracing?' } @{ mock_requests($mock) };
like($req->{headers}{traceparent} // '', qr/^00-[0-9a-f]{32}-[0-9a-f]{16}-01$/, 'run_sync requests carry a traceparent');

# another role sees nothing
is(sql_as($node, 'mallory', "SELECT agentorch.trace($run) IS NULL"), 't', 'another role gets NULL');

# an invalid traceparent is refused
for my $bad ('00-xyz', '00-00000000000000000000000000000000-00f067aa0ba902b7-01', 'ff-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01', '00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01')
{
	my $r = psql_result($node, 'postgres', undef, "SELECT agentorch.start('{\"prompt\": \"x?\"}', 'simple', NULL, '{\"model\": \"default\", \"traceparent\": \"$bad\"}')");
	is($r->{sqlstate}, '22023', "traceparent $bad refused");
}

# Prometheus text format
my $prom = sql($node, 'SELECT agentorch.metrics_prometheus()');
like($prom, qr/^# TYPE agentorch_steps_done_total counter\nagentorch_steps_done_total \d+$/m, 'prometheus: a counter');
like($prom, qr/^# TYPE agentorch_runs_succeeded gauge\nagentorch_runs_succeeded 3$/m, 'prometheus: a gauge');
like($prom, qr/^agentorch_target_requests_total\{target="model:default"\} \d+$/m, 'prometheus: a per-target figure with its label');
my %types;
for my $line (split /\n/, $prom)
{
	next if $line =~ /^# TYPE (\S+) (counter|gauge)$/ && ++$types{$1};
	like($line, qr/^(agentorch_[a-z0-9_]+)(\{target="[^"\\\n]*"\})? -?[0-9.e+]+$/, "prometheus: sample line '$line'") unless $line =~ /^agentorch_/ && $line =~ /^(\S+?)(\{|\s)/ && $types{$1};
}
ok(!grep({ $types{$_} > 1 } keys %types), 'prometheus: one TYPE line per family');

# the audit log: who did what, each role sees its own rows, superusers all
sql_as($node, 'mallory', q{SELECT agentorch.register_workflow('m-approve', '{"steps": [{"id": "ask", "type": "user_input", "prompt": "ok?"}]}')});
my $m1 = sql_as($node, 'mallory', q{SELECT agentorch.run_workflow('m-approve')});
my $m2 = sql_as($node, 'mallory', q{SELECT agentorch.run_workflow('m-approve')});
is(sql_as($node, 'mallory', "SELECT status FROM agentorch.wait($m1, '30s')"), 'waiting', 'audit: the run waits for input');
sql_as($node, 'mallory', "SELECT agentorch.submit_input($m1, 'ask', '{\"secret\": \"s3cr3t\"}')");
sql_as($node, 'mallory', "SELECT agentorch.cancel($m2, 'not needed')");
sql_as($node, 'mallory', "SELECT agentorch.resume($m2)");
sql($node, q{SELECT agentorch.register_tool('t.audit', 'sql', '{"sql": "SELECT 1 AS one"}')});
sql($node, q{SELECT agentorch.grant_tool('t.audit', 'mallory')});
my $mine = sql_as($node, 'mallory', q{SELECT string_agg(action || ':' || COALESCE(object, '') || ':' || COALESCE(run_id::text, ''), ',' ORDER BY id) FROM agentorch.audit_log});
is($mine, "register_workflow:m-approve:,start:fixed:$m1,start:fixed:$m2,submit_input:ask:$m1,cancel::$m2,resume::$m2",
	'audit: mallory sees her actions, in order');
unlike(sql_as($node, 'mallory', q{SELECT string_agg(detail::text, ' ') FROM agentorch.audit_log}), qr/s3cr3t/, 'audit: submitted values are not logged');
like(sql_as($node, 'mallory', q{SELECT detail->>'reason' FROM agentorch.audit_log WHERE action = 'cancel'}), qr/^not needed$/, 'audit: the cancel reason');
is(sql_as($node, 'mallory', q{SELECT count(*) FROM agentorch.audit_log WHERE actor <> 'mallory'::regrole}), '0', 'audit: no other role\'s rows');
my $all = sql($node, q{SELECT string_agg(DISTINCT action, ',' ORDER BY action) FROM agentorch.audit_log});
like($all, qr/register_model.*register_tool/, 'audit: the superuser sees every role\'s actions');
like(sql($node, q{SELECT actor::regrole || ' ' || (detail->>'grantee') FROM agentorch.audit_log WHERE action = 'grant_tool'}),
	qr/^postgres mallory$/, 'audit: who granted what to whom');
my $r = psql_result($node, 'postgres', 'mallory', q{DELETE FROM agentorch.audit_log});
isnt($r->{rc}, 0, 'audit: a role cannot delete its audit rows');

ok(!crashed($node), 'no server process crashed');
done_testing();
