# The LLM selector (agentorch.selector = llm | hybrid) against the mock:
#   - the model is forced through schemas/OrchestrationType.schema.json by
#     structured output, and its answer decides (source llm, the model named);
#   - answers are cached in llm_cache by normalized input: the same input
#     (also in another letter case or key order) sends no second request;
#   - a failing model, an invalid answer and a confidence below
#     agentorch.selector_min_confidence hand the decision to the rules;
#   - hybrid: a matching rule decides without asking the model; otherwise
#     the model; otherwise the default;
#   - start() with a NULL orchestration stores the model's decision.
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $mock = mock_start('selector.json');
my $node = llm_start(llm_node('llm_selector', "agentorch.selector = 'llm'", "agentorch.selector_model = 'sel'"));
register_model($node, 'sel', 'openai', $mock, { model => 'mock-selector' });
sql($node, q{SELECT agentorch.register_workflow('sel-wf', '{"steps": [{"id": "q", "type": "tool", "tool": "database.query", "input": {"query": "SELECT 1 AS one"}}]}')});

sub requests { return mock_get($mock, '/stats')->{requests_total} // 0; }

# select(input) as "orchestration|workflow|confidence|source|reason"
sub choose
{
	my ($input, $pre) = @_;
	return sql($node, ($pre // '') . 'SELECT orchestration, workflow, confidence, source, reason FROM agentorch.select(' . json_in($input) . ')');
}

# --- the model decides, through the schema
my $before = requests();
my $out = choose({ prompt => 'case-simple: what time is it in Paris?' });
like($out, qr/^simple\|\|0\.9\|llm\|model "sel": a single question$/, 'llm: the model chose simple') or diag($out);
is(requests(), $before + 1, 'llm: one request to the selector model');
my $req = mock_get($mock, '/requests')->{requests}[-1];
is($req->{body}{response_format}{type}, 'json_schema', 'llm: the request forces structured output');
is_deeply([ sort @{ $req->{body}{response_format}{json_schema}{schema}{required} } ], [ 'orchestrationType' ],
	'llm: through the OrchestrationType schema ({"orchestrationType": ...})');
is_deeply([ sort keys %{ $req->{body}{response_format}{json_schema}{schema}{properties} } ],
	[ 'confidence', 'orchestrationType', 'reason', 'workflow' ], 'llm: workflow, confidence and reason are optional');
like(join("\n", map { ref $_->{content} ? '' : $_->{content} } @{ $req->{body}{messages} }), qr/case-simple: what time is it in Paris\?/,
	'llm: the request carries the input');

# --- cache: the same normalized input asks nothing
$before = requests();
$out = choose({ prompt => 'case-simple: what time is it in Paris?' });
like($out, qr/^simple\|\|0\.9\|llm\|model "sel" \(cached answer\): a single question$/, 'cache: the cached answer decides') or diag($out);
$out = choose({ prompt => 'CASE-SIMPLE: What time is it in Paris?' });
like($out, qr/\(cached answer\)/, 'cache: another letter case is the same input');
is(requests(), $before, 'cache: no request was sent');
is(sql($node, "SELECT count(*) FROM agentorch.llm_cache WHERE request_hash LIKE 'selector:%'"), '1', 'cache: one llm_cache row');
$out = choose({ prompt => 'case-simple: what time is it in Paris?' }, "SET agentorch.selector_cache_ttl = 0;\n");
is(requests(), $before + 1, 'cache: selector_cache_ttl = 0 asks the model again');

# an answer with the type alone (no confidence) decides
$out = choose({ prompt => 'case-noconf: keep an eye on the stock levels' });
like($out, qr/^reactive\|\|1\|llm\|model "sel": no reason given$/, 'llm: an answer without a confidence decides') or diag($out);

# --- fixed with the model's workflow; start() stores the decision
$out = choose({ prompt => 'case-fixed: the monthly numbers' });
like($out, qr/^fixed\|sel-wf\|0\.95\|llm\|/, 'llm: fixed with the workflow the model named') or diag($out);
$out = sql($node, "BEGIN;\nSELECT agentorch.start('{\"prompt\": \"case-fixed: the monthly numbers\"}') AS r \\gset\n"
	  . "SELECT orchestration, workflow_name, selection->>'source', selection->>'model', selection->>'workflow' FROM agentorch.runs WHERE id = :r;\nROLLBACK;");
is($out, 'fixed|sel-wf|llm|sel|sel-wf', 'start(): the model\'s decision is stored in runs.selection');

# --- planner from the model: start() makes a planner run
$out = choose({ prompt => 'case-planner: compare three suppliers' });
like($out, qr/^planner\|\|0\.8\|llm\|model "sel": several tools$/, 'llm: the model chose planner') or diag($out);
$out = sql($node, "BEGIN;\nSELECT agentorch.start('{\"prompt\": \"case-planner: compare three suppliers\"}') AS r \\gset\n"
	  . "SELECT orchestration, selection->>'source', (SELECT string_agg(step_id, ',') FROM agentorch.steps WHERE run_id = :r) FROM agentorch.runs WHERE id = :r;\nROLLBACK;");
is($out, 'planner|llm|planner@1', 'start(): a planner run with its planner step');

# --- the rules decide when the model cannot
sql($node, q{SELECT agentorch.load_selector_rules('rules: [{name: refunds, match: {keywords: [refund]}, orchestration: simple}]')});
$out = choose({ prompt => 'case-low: a refund please' });
like($out, qr/^simple\|\|1\|rules\|the selector model's confidence 0\.2 is below agentorch\.selector_min_confidence \(0\.5\); rule "refunds" matched/,
	'low confidence: the rules decide') or diag($out);
$out = choose({ prompt => 'case-low: a refund please' }, "SET agentorch.selector_min_confidence = 0.1;\n");
like($out, qr/^reactive\|\|0\.2\|llm\|.*\(cached answer\)/, 'a lower selector_min_confidence takes the cached answer') or diag($out);
$before = requests();
$out = choose({ prompt => 'case-fail: is it raining?' });
like($out, qr/^simple\|\|0\.8\|default\|the selector model failed: .*; no rule matched; a short question/,
	'failing model: the default decides') or diag($out);
cmp_ok(requests(), '>', $before, 'failing model: it was asked');
is(sql($node, "SELECT count(*) FROM agentorch.llm_cache WHERE request::text LIKE '%case-fail%'"), '0', 'failing model: nothing cached');
$out = choose({ prompt => 'case-invalid: a refund?' });
like($out, qr/^simple\|\|1\|rules\|the selector model failed: the model's structured output does not match response_schema; rule "refunds" matched/,
	'invalid answer: the rules decide') or diag($out);

# --- hybrid: a rule first, then the model, then the default
my $H = "SET agentorch.selector = 'hybrid';\n";
$before = requests();
$out = choose({ prompt => 'case-fixed: a refund for the monthly numbers' }, $H);
like($out, qr/^simple\|\|1\|rules\|rule "refunds" matched/, 'hybrid: a matching rule decides') or diag($out);
is(requests(), $before, 'hybrid: the model was not asked');
$out = choose({ prompt => 'case-planner: compare four suppliers' }, $H);
like($out, qr/^planner\|\|0\.8\|llm\|model "sel": several tools/, 'hybrid: no rule, the model decides') or diag($out);
$out = choose({ prompt => 'case-fail: write a poem' }, $H);
like($out, qr/^planner\|\|0\.5\|default\|the selector model failed: .*; no rule matched; not a short question/,
	'hybrid: the model failed, the default decides') or diag($out);

ok(!crashed($node), 'no server process crashed');
# a selector request cut short by an ERROR (here statement_timeout) leaves
# nothing behind: the session goes on, nothing crashes
{
	my ($out, $err) = ('', '');
	my $cut = "SELECT source FROM agentorch.select('{\"prompt\": \"case-slow question\"}');\n";
	$node->psql('postgres',
		"SET agentorch.selector_cache_ttl = 0;\nSET statement_timeout = '100ms';\n" . ($cut x 5)
		  . "RESET statement_timeout;\n"
		  . "SELECT source FROM agentorch.select('{\"prompt\": \"case-simple after the cancels\"}');\n",
		stdout => \$out, stderr => \$err, on_error_stop => 0);
	my $cancels = () = $err =~ /canceling statement due to statement timeout/g;
	is($cancels, 5, 'five selector requests were cut short by statement_timeout');
	like($out, qr/^llm$/m, 'after them the session still selects by the model');
	ok(!crashed($node), 'no server process crashed');
}

$node->stop;
done_testing();
