// Drives the service with the official `openai` npm package and prints what it saw as JSON.
//
//   node client.mjs <base-url> <model> <scenario>...
//
// Scenarios: models, create, create-stream, stream-helper. Each result is what the SDK handed
// back (chunks, the final completion, the model list), or {"error": {name, message}} when the
// SDK threw, so the Python test can assert on either. The API key is read from OPENAI_API_KEY.
import OpenAI from "openai";

const QUESTION = process.env.QUESTION ?? "Why is the sky blue?";

function messages() {
  return [{ role: "user", content: QUESTION }];
}

async function models(client) {
  const page = await client.models.list();
  const listed = page.data;
  const retrieved = await client.models.retrieve(listed[0].id);
  return { listed, retrieved };
}

async function create(client, model) {
  return await client.chat.completions.create({ model, messages: messages() });
}

async function createStream(client, model) {
  const stream = await client.chat.completions.create({
    model,
    messages: messages(),
    stream: true,
    stream_options: { include_usage: true },
  });
  const chunks = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
  }
  return { chunks };
}

async function streamHelper(client, model) {
  const runner = client.chat.completions.stream({ model, messages: messages() });
  const chunks = [];
  let content = "";
  runner.on("chunk", (chunk) => chunks.push(chunk));
  runner.on("content.delta", ({ delta }) => {
    content += delta;
  });
  const final = await runner.finalChatCompletion();
  return { chunks, content, final };
}

const SCENARIOS = {
  models,
  create,
  "create-stream": createStream,
  "stream-helper": streamHelper,
};

async function main() {
  const [baseURL, model, ...names] = process.argv.slice(2);
  if (!baseURL || !model || names.length === 0) {
    throw new Error("usage: node client.mjs <base-url> <model> <scenario>...");
  }
  const client = new OpenAI({
    baseURL,
    apiKey: process.env.OPENAI_API_KEY ?? "unused",
    maxRetries: 0,
    timeout: 30_000,
  });
  const results = {};
  for (const name of names) {
    const scenario = SCENARIOS[name];
    if (!scenario) {
      throw new Error(`unknown scenario ${name}; known: ${Object.keys(SCENARIOS).join(", ")}`);
    }
    try {
      results[name] = await scenario(client, model);
    } catch (error) {
      results[name] = { error: { name: error.constructor.name, message: error.message } };
    }
  }
  process.stdout.write(JSON.stringify(results));
}

await main();
