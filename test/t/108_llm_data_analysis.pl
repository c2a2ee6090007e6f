# LLM layer: the data-analysis sample end to end (samples/workflows/
# data-analysis.yaml with samples/tools.sql) against the mock server's
# demo script. The llm step names no model: agentorch.default_model picks
# it. load_data -> analyze (llm, JSON reply) -> visualize (parallel:
# chart.create, report.generate).
use strict;
use warnings;
use PostgreSQL::Test::Cluster;
use PostgreSQL::Test::Utils;
use Test::More;
use Encode ();
use FindBin;
use lib $FindBin::Bin;
use AgentorchLLM;

my $samples = $ENV{AO_SAMPLES} || "$FindBin::Bin/../../samples";
ok(-f "$samples/workflows/data-analysis.yaml", "the samples are at $samples");

my $mock = mock_start('../mock_llm/scripts/demo.json');
my $node = llm_start(llm_node('llm_analysis', "agentorch.default_model = 'demo'"));
register_model($node, 'demo', 'openai', $mock,
	{ model => 'mock-gpt-4o-mini', prices => { input_per_mtok => 0.15, output_per_mtok => 0.6 } });
sql($node, slurp_file("$samples/tools.sql"));

my $yaml = slurp_file("$samples/workflows/data-analysis.yaml");
die 'quote tag in the sample' if $yaml =~ /\$Y\$/;
is(sql($node, "SELECT count(*) FROM agentorch.validate_workflow(agentorch.yaml_to_jsonb(\$Y\$$yaml\$Y\$))"),
	'0', 'the sample validates');
is(sql($node, "SELECT agentorch.register_workflow_yaml('data-analysis', \$Y\$$yaml\$Y\$)"), '1', 'registered as version 1');

my $run = sql($node, q{SELECT agentorch.run_workflow('data-analysis')});
is(wait_status($node, $run), 'succeeded', 'the data-analysis run succeeded');
is(sql($node, "SELECT string_agg(step_id || '=' || status, ',' ORDER BY step_id) FROM agentorch.steps WHERE run_id = $run"),
	'analyze=succeeded,load_data=succeeded,visualize=succeeded,visualize[0]=succeeded,visualize[1]=succeeded',
	'every step succeeded (the parallel children, written without ids, are visualize[0] and visualize[1])');
is(sql($node, "SELECT string_agg(step_id || ':' || kind, ',' ORDER BY step_id) FROM agentorch.steps WHERE run_id = $run AND parent_step_id = 'visualize'"),
	'visualize[0]:tool,visualize[1]:tool', 'their type is inferred from "tool"');
is(sql($node, "SELECT definition->'workflow'->>'name' || ' ' || (definition->'workflow'->>'version') FROM agentorch.workflows WHERE name = 'data-analysis'"),
	Encode::encode_utf8("\x{b370}\x{c774}\x{d130} \x{bd84}\x{c11d} \x{c6cc}\x{d06c}\x{d50c}\x{b85c}\x{c6b0} 1.0.0"),
	'the display name and version are kept as written');

my $out = jdec(run_field($node, $run, 'output::text'));
is($out->{visualize}[0]{points}, 4, 'output: visualize[0].points = 4');
is($out->{visualize}[0]{type}, 'bar', 'output: visualize[0] is the bar chart');
is($out->{visualize}[1]{text},
	'Revenue grew in every quarter, up 42.5% from Q1 to Q4; Q4 was the strongest quarter.',
	'output: visualize[1].text is the report of the summary');

my $analyze = step_row($node, $run, 'analyze');
is(jenc([ map { $_->{label} } @{ $analyze->{output}{chart_data} } ]), '["Q1","Q2","Q3","Q4"]',
	'analyze: its output is the JSON value of the reply');
is(sql($node, "SELECT ((SELECT string_agg(content, '' ORDER BY seq) FROM agentorch.chunks WHERE run_id = $run AND step_id = 'analyze' AND kind = 'token'))::jsonb = output FROM agentorch.steps WHERE run_id = $run AND step_id = 'analyze'"),
	't', 'analyze: its streamed tokens are the JSON text of the output');
cmp_ok($analyze->{prompt_tokens}, '>', 0, 'analyze: prompt tokens counted');
cmp_ok($analyze->{completion_tokens}, '>', 0, 'analyze: completion tokens counted');
is(sql($node, "SELECT cost > 0 AND cost = (SELECT sum(cost) FROM agentorch.steps WHERE run_id = $run) FROM agentorch.runs WHERE id = $run"),
	't', 'the run cost is the cost of the llm step');

my ($req) = grep { $_->{rule} eq 'analysis' } @{ mock_requests($mock) };
ok($req, 'the mock answered with its analysis rule');
is($req->{body}{model}, 'mock-gpt-4o-mini', 'agentorch.default_model chose the model');
my ($user) = map { $_->{content} } grep { $_->{role} eq 'user' } @{ $req->{body}{messages} };
like($user, qr/^Analyze this sales data and identify trends/, 'the prompt is sent');
like($user, qr/context:.*north.*amount/s, 'the loaded sales rows are given to the model as context');

is(sql($node, "SELECT count(*) FROM agentorch.chunks WHERE run_id = $run AND kind = 'final'"), '1', 'one final chunk');
is(sql($node, "SELECT max(seq) = count(*) AND min(seq) = 1 FROM agentorch.chunks WHERE run_id = $run"), 't',
	'chunk seqs are 1..n');

$node->stop;
done_testing();
